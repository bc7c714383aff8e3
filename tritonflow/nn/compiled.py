"""tritonflow.compile(module): a module whose forward runs as a compiled graph.

Framework stage. The module's parameters and buffers are passed to one jitted function as
arguments at every call, so the graph reads their current values (an optimizer step needs no
recompile) and gradients flow back to them through the compiled backward. Inside the trace the
forward runs on `functional_clone(module, proxies)`. Training flags are static arguments, so
`eval()` compiles (once) a separate graph. The tensors travel as one `ModuleState` argument named
`model`, so the graph's inputs are named by state-dict key (`%model.0.weight`). Called inside
another jitted function, the compiled module is inlined: its tensors are then that function's
captured state (found as `cmodel.0.weight` through the compiled module).
"""
from __future__ import annotations

from tritonflow.jit_function import JitFunction
from tritonflow.nn.modules import Module, functional_clone, labels_of, tensors_of
from tritonflow.tracer import state as trace_state
from tritonflow.tracer.sources import ATTR, register_container


class ModuleState:
    """A module's tensors as one jit argument, flattened in order and labelled by state-dict key."""

    __slots__ = ("tensors", "labels")

    def __init__(self, tensors: list, labels: tuple) -> None:
        self.tensors = tensors
        self.labels = labels

    def __tritonflow_flatten__(self):
        return list(self.tensors), self.labels

    @classmethod
    def __tritonflow_unflatten__(cls, aux, tensors):
        return cls(tensors, aux)

    def __tritonflow_labels__(self) -> list[str]:
        return list(self.labels)


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

    def _run(self, model: ModuleState, names: tuple, training: tuple, args: tuple, kwargs: dict):
        tensors = model.tensors
        clone = functional_clone(self.module, {name: tensors[i] for name, i in names})
        return clone(*args, **kwargs)

    def jit_arguments(self, args: tuple, kwargs: dict) -> tuple:
        """What a call passes to the jitted function: the module's tensors, their names, the
        training flags, then the caller's arguments."""
        tensors, names = tensors_of(self.module)
        training = tuple(m.training for m in self.module.modules())
        return (ModuleState(tensors, tuple(labels_of(names, len(tensors)))), names, training, args, kwargs)

    def __call__(self, *args, **kwargs):
        ctx = trace_state.current()
        if ctx is not None:   # inlined into a jitted caller: the training flags it bakes in are guarded
            module = self.module
            ctx.guard_value(("training", id(module)), lambda: tuple(m.training for m in module.modules()),
                            f"{ctx.name_of(self, type(module).__name__)}: the training flags of its modules")
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


register_container(CompiledModule, lambda c: [("", ((ATTR, "module"),), c.__dict__["module"], False)])


def compile(module: Module, *, backend: str | None = None, dynamic: bool = False,  # noqa: A001
            mode: str = "default") -> CompiledModule:
    """A callable running `module`'s forward jitted; its parameters and buffers are read at each call."""
    return CompiledModule(module, backend=backend, dynamic=dynamic, mode=mode)
