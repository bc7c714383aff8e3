"""tritonflow.nn: `Module`, the base class of layers and models.

Framework stage. Attribute assignment registers parameters, buffers and submodules (as in
PyTorch); `state_dict` / `load_state_dict` check shapes and dtypes per key; `to()` moves or casts
parameters in place, so optimizers holding them stay valid. `functional_clone` makes a shallow
copy of a module tree whose tensors are replaced (compiled modules run the copy on proxies).

A module a jitted function closes over is captured state: its tensors are found by name
(`_state_children`, for tracer/sources.py), calling it guards its training flag, and rebinding
one of its attributes to a traced value is refused (it would happen once, while tracing).
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Iterator

from tritonflow import dtypes as D
from tritonflow.errors import DTypeError, ShapeError, TraceError, TritonflowError
from tritonflow.nn.parameter import Parameter
from tritonflow.tensor_class import Tensor
from tritonflow.tracer import state as trace_state
from tritonflow.tracer.sources import ATTR, ITEM, public_attributes, register_container

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class StateDictError(TritonflowError, KeyError):
    """load_state_dict: keys missing from, or unexpected in, a state dict."""

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


class Module:
    """Base class: subclasses assign Parameters, Modules and buffers in `__init__`, define `forward`."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---------------------------------------------------------------- registration

    def _require_init(self, name: str) -> None:
        if "_parameters" not in self.__dict__:
            raise TritonflowError(f"cannot assign {name!r} before Module.__init__() is called "
                                  f"(call super().__init__() first in {type(self).__name__}.__init__)")

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, Tensor) and value._node is not None and "_tritonflow_clone" not in self.__dict__:
            ctx = trace_state.current()
            if ctx is not None:
                raise TraceError(f"jit: {ctx.name_of(self, type(self).__name__)}.{name} is rebound to a value "
                                 f"computed inside the jitted function; rebinding an attribute of a captured "
                                 f"module happens once, while tracing. Write into the tensor in place "
                                 f"(self.{name}.copy_(value)) or return the value")
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._require_init(name)
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            self._require_init(name)
            self._forget(name)
            self._modules[name] = value
        elif params is not None and name in params:
            if value is not None and not isinstance(value, Tensor):
                raise DTypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                 f"(a Parameter or None is expected)")
            if value is not None and not isinstance(value, Parameter) and value._node is None:
                raise DTypeError(f"cannot assign a plain Tensor as parameter {name!r}: wrap it in "
                                 f"nn.Parameter(...) or assign under a different name")
            params[name] = value
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise DTypeError(f"cannot assign {type(value).__name__} as buffer {name!r} (a Tensor is expected)")
            self._buffers[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise DTypeError(f"cannot assign {type(value).__name__} as submodule {name!r}")
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param) -> None:
        self._require_init(name)
        if param is not None and not isinstance(param, Parameter):
            raise DTypeError(f"register_parameter: {name!r} must be a Parameter or None, got "
                             f"{type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        self._require_init(name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise DTypeError(f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        self._forget(name)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module) -> None:
        self._require_init(name)
        if module is not None and not isinstance(module, Module):
            raise DTypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    # ---------------------------------------------------------------- traversal

    def named_modules(self, memo: set | None = None, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator["Module"]:
        for _, child in self.named_children():
            yield child

    def _named_members(self, store: str, prefix: str, recurse: bool):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ---------------------------------------------------------------- calling

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        if "_tritonflow_clone" not in self.__dict__:
            ctx = trace_state.current()
            if ctx is not None:   # a captured module: its training flag shapes the graph (dropout)
                ctx.guard_value(("training", id(self)), lambda: self.training,
                                f"{ctx.name_of(self, type(self).__name__)}.training")
        return self.forward(*args, **kwargs)

    # ---------------------------------------------------------------- modes and state

    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        import tritonflow.api as T
        for p in self.parameters():
            if set_to_none:
                p.grad = None   # written without reading: a jitted step need not guard what it held
            elif p.grad is not None:
                p.grad = T.zeros_like(p.grad)

    def apply(self, fn) -> "Module":
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False) -> "OrderedDict":
        """Parameters and persistent buffers by dotted name (detached unless keep_vars)."""
        out = OrderedDict() if destination is None else destination
        for module_prefix, module in self.named_modules(prefix=prefix.rstrip(".")):
            dotted = f"{module_prefix}." if module_prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    out[dotted + name] = p if keep_vars else p.detach()
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    out[dotted + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values in by name. Every shape and dtype is checked before anything is written."""
        import tritonflow.api as T
        from tritonflow.autograd import no_grad

        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise StateDictError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts))
        plan = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if not isinstance(value, Tensor):
                value = T.tensor(value)
            if tuple(value.shape) != tuple(target.shape):
                raise ShapeError(f"load_state_dict: shape mismatch for {key!r}: the checkpoint has "
                                 f"{tuple(value.shape)}, the model has {tuple(target.shape)}")
            if value.dtype is not target.dtype:
                raise DTypeError(f"load_state_dict: dtype mismatch for {key!r}: the checkpoint has "
                                 f"{value.dtype.name}, the model has {target.dtype.name} (cast one of them "
                                 f"with .to(dtype) first)")
            plan.append((target, value))
        with no_grad():
            for target, value in plan:
                target.copy_(value.detach())
        return IncompatibleKeys(missing, unexpected)

    # ---------------------------------------------------------------- devices and dtypes

    def to(self, *args, **kwargs) -> "Module":
        """`module.to("cuda")`, `module.to(tritonflow.bfloat16)`: floating tensors change in place."""
        import tritonflow.api as T
        from tritonflow import dtypes as D
        device, dtype = kwargs.get("device"), kwargs.get("dtype")
        for a in args:
            if (isinstance(a, str) and not a.startswith(("float", "bfloat", "half", "double"))) or \
                    type(a).__name__ == "device":
                device = a
            else:
                dtype = a
        if dtype is not None:
            dtype = D.as_dtype(dtype)
            if not dtype.is_floating_point:
                raise DTypeError(f"Module.to: only floating point dtypes are allowed, got {dtype.name}")

        def convert(t: Tensor) -> None:
            new = t.detach()
            if dtype is not None and t.dtype.is_floating_point:
                new = T.cast(new, dtype)
            if device is not None:
                new = T.to(new, device)
            # Rebind in place (identity kept) so optimizers and other references stay valid.
            t._data, t.dtype, t.device, t._shape = new._data, new.dtype, new.device, new._shape
            t._version += 1
            if t.grad is not None:
                convert(t.grad)
        seen = set()
        for m in self.modules():
            for t in list(m._parameters.values()) + list(m._buffers.values()):
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    convert(t)
        return self

    def cuda(self) -> "Module":
        return self.to("cuda")

    def cpu(self) -> "Module":
        return self.to("cpu")

    # ---------------------------------------------------------------- printing

    # Attributes a module's repr shows as `name=value` (the default extra_repr).
    _repr_fields: tuple = ()

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)}" for name in self._repr_fields)

    def __repr__(self) -> str:
        lines = []
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"

    # ---------------------------------------------------------------- jit arguments

    def __tritonflow_flatten__(self):
        """A module passed to a jitted function: its tensors are arguments, its training flags static."""
        tensors, names = tensors_of(self)
        training = tuple(m.training for m in self.modules())
        return tensors, (self, names, training)

    def __tritonflow_labels__(self) -> list[str]:
        """A name per flattened tensor (its first state-dict key): graph input names."""
        tensors, names = tensors_of(self)
        return labels_of(names, len(tensors))

    @classmethod
    def __tritonflow_unflatten__(cls, aux, tensors):
        module, names, _ = aux
        return functional_clone(module, {name: tensors[i] for name, i in names})

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))


def functional_clone(module: Module, tensors: dict) -> Module:
    """A shallow copy of `module`'s tree whose parameters and buffers are `tensors[dotted name]`.

    The copy shares everything else (hyperparameters, training flags); names absent from `tensors`
    keep their original tensor. Shared submodules stay shared in the copy.
    """
    memo: dict[int, Module] = {}

    def clone(m: Module, prefix: str) -> Module:
        if id(m) in memo:
            return memo[id(m)]
        c = object.__new__(type(m))
        c.__dict__.update(m.__dict__)
        c.__dict__["_tritonflow_clone"] = True   # runs on proxies: not captured state
        memo[id(m)] = c
        dotted = f"{prefix}." if prefix else ""
        object.__setattr__(c, "_parameters", OrderedDict(
            (k, tensors.get(dotted + k, v)) for k, v in m._parameters.items()))
        object.__setattr__(c, "_buffers", OrderedDict(
            (k, tensors.get(dotted + k, v)) for k, v in m._buffers.items()))
        object.__setattr__(c, "_modules", OrderedDict(
            (k, None if v is None else clone(v, dotted + k)) for k, v in m._modules.items()))
        return c
    return clone(module, "")


def tensors_of(module: Module):
    """Unique tensors (parameters, then buffers) and, per dotted name, the index of its tensor."""
    tensors, index_of, names = [], {}, []
    for kind in ("_parameters", "_buffers"):
        for prefix, m in module.named_modules():
            dotted = f"{prefix}." if prefix else ""
            for name, t in getattr(m, kind).items():
                if t is None:
                    continue
                if id(t) not in index_of:
                    index_of[id(t)] = len(tensors)
                    tensors.append(t)
                names.append((dotted + name, index_of[id(t)]))
    return tensors, tuple(names)


def labels_of(names: tuple, count: int) -> list[str]:
    """The first dotted name of each of `count` tensors, from `tensors_of`'s (name, index) pairs."""
    labels = [""] * count
    for name, index in reversed(names):
        labels[index] = name
    return labels


def _state_children(m: Module) -> list:
    """Where a module keeps its state, for captured-state names (tracer/sources.py)."""
    children = []
    for store in ("_parameters", "_buffers", "_modules"):
        children += [(k, ((ATTR, store), (ITEM, k)), v, False) for k, v in getattr(m, store).items() if v is not None]
    return children + public_attributes(m)


register_container(Module, _state_children)

for _name, _dtype in D.SHORT_NAMES.items():  # module.half(), module.double(), ...: floating point casts
    if _dtype.is_floating_point:
        setattr(Module, _name, (lambda _n: lambda self: self.to(_n))(_dtype.name))
