"""tritonflow.compile(module): a module whose forward runs as a compiled graph.

Framework stage. The module's parameters and buffers are passed to one jitted function as
arguments at every call, so the graph reads their current values (an optimizer step needs no
recompile) and gradients flow back to them through the compiled backward. Inside the trace the
forward runs on `functional_clone(module, proxies)`. Training flags are static arguments, so
`eval()` compiles (once) a separate graph.
"""
from __future__ import annotations

from tritonflow.jit_function import JitFunction
from tritonflow.nn.modules import Module, functional_clone, tensors_of


class CompiledModule:
    """The callable `tritonflow.compile(module)` returns; other attributes read through to the module."""

    def __init__(self, module: Module, backend: str | None = None, dynamic: bool = False,
                 mode: str = "default") -> None:
        if not isinstance(module, Module):
            from tritonflow.errors import UnsupportedError
            raise UnsupportedError(f"tritonflow.compile: expected an nn.Module, got {type(module).__name__} "
                                   f"(use tritonflow.jit for functions)")
        self.__dict__["module"] = module
        self.__dict__["_jit"] = JitFunction(self._run, backend=backend, dynamic=dynamic, mode=mode)
        self.__dict__["_jit"].__name__ = type(module).__name__

    def _run(self, tensors: list, names: tuple, training: tuple, args: tuple, kwargs: dict):
        clone = functional_clone(self.module, {name: tensors[i] for name, i in names})
        return clone(*args, **kwargs)

    def jit_arguments(self, args: tuple, kwargs: dict) -> tuple:
        """What a call passes to the jitted function: the module's tensors, their names, the
        training flags, then the caller's arguments."""
        tensors, names = tensors_of(self.module)
        training = tuple(m.training for m in self.module.modules())
        return (tensors, names, training, args, kwargs)

    def __call__(self, *args, **kwargs):
        return self._jit(*self.jit_arguments(args, kwargs))

    forward = __call__

    def cache_info(self):
        return self._jit.cache_info()

    @property
    def jit_function(self) -> JitFunction:
        return self._jit

    def __tritonflow_jit_call__(self, args: tuple, kwargs: dict) -> tuple:
        """(jitted function, its arguments) for a call with `args`: what explain() and verify() inspect."""
        return self._jit, self.jit_arguments(args, kwargs), {}

    def __getattr__(self, name: str):
        return getattr(self.__dict__["module"], name)

    def __repr__(self) -> str:
        return f"CompiledModule({self.module!r})"


def compile(module: Module, *, backend: str | None = None, dynamic: bool = False,  # noqa: A001
            mode: str = "default") -> CompiledModule:
    """A callable running `module`'s forward jitted; its parameters and buffers are read at each call."""
    return CompiledModule(module, backend=backend, dynamic=dynamic, mode=mode)
