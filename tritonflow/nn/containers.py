"""tritonflow.nn: containers — Sequential, ModuleList, ModuleDict.

Framework stage. Children are registered under their index (or key) so parameter names match
PyTorch's ("0.weight", "layers.3.bias"), and state dicts load across the two.
"""
from __future__ import annotations

from collections import OrderedDict

from tritonflow.errors import DTypeError, TritonflowIndexError
from tritonflow.nn.modules import Module


def _check(module, where: str) -> Module:
    if not isinstance(module, Module):
        raise DTypeError(f"{where}: expected a Module, got {type(module).__name__}")
    return module


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: length, iteration, and indexing that names the container."""

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return self._from_items(items[index])
        if not -len(items) <= index < len(items):
            raise TritonflowIndexError(f"{self._kind}: index {index} out of range for {len(items)} modules")
        return items[index][1]

    def append(self, module):
        self.add_module(str(len(self)), _check(module, f"{self._kind}.append"))
        return self


class Sequential(_ModuleSequence):
    """Run modules in order: `Sequential(Linear(4, 8), ReLU(), Linear(8, 2))` or from an OrderedDict."""

    _kind = "Sequential"

    def __init__(self, *modules) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, _check(m, "Sequential"))
        else:
            for index, m in enumerate(modules):
                self.add_module(str(index), _check(m, "Sequential"))

    @staticmethod
    def _from_items(items: list) -> "Sequential":
        return Sequential(OrderedDict(items))

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(_ModuleSequence):
    """A list of modules whose parameters are registered (a plain Python list would hide them)."""

    _kind = "ModuleList"

    def __init__(self, modules=None) -> None:
        super().__init__()
        for m in modules or ():
            self.append(m)

    @staticmethod
    def _from_items(items: list) -> "ModuleList":
        return ModuleList([m for _, m in items])

    def __setitem__(self, index: int, module) -> None:
        keys = list(self._modules)
        self._modules[keys[index]] = _check(module, "ModuleList")

    def extend(self, modules) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self


class ModuleDict(Module):
    def __init__(self, modules=None) -> None:
        super().__init__()
        for name, m in (modules or {}).items():
            self.add_module(name, _check(m, "ModuleDict"))

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module) -> None:
        self.add_module(key, _check(module, "ModuleDict"))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()
