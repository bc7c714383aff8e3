"""Framework stage: `tritonflow.jit` and `tritonflow.compile` — trace once per guard key, then run.

A call flattens its arguments, builds the guard key (structure, static values, and each tensor's
shape or symbolic shape, dtype, device, requires_grad) and looks at the entries compiled for it:
the first whose captured state still binds (tracer/binding.py: the globals and closure variables
it read, the tensors it captured from them, their gradients, the Python flags it depended on) is
run. A miss traces, runs the passes, builds the runner and logs why it recompiled. A run does the
deferred Python effects the trace asked for (an LR scheduler's step) before or after the graph.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import sys
import threading
import types
import warnings
from collections import namedtuple

from tritonflow import autograd, backends, environment
from tritonflow.amp.autocast_mode import state_key as autocast_state_key
from tritonflow.compiled_autograd import build_differentiable_entry
from tritonflow.errors import DeviceError, DTypeError, TraceError, UnsupportedError
from tritonflow.jit_entry import CompiledEntry, make_runner, write_back
from tritonflow.passes.pipeline import run_passes
from tritonflow.philox import default_generator
from tritonflow import profile_hooks as profiler_hooks
from tritonflow.tensor_class import Tensor
from tritonflow.tracer import guards, pytree
from tritonflow.tracer import state as trace_state
from tritonflow.tracer.trace import trace

CacheInfo = namedtuple("CacheInfo", ["hits", "misses", "entries"])
RECOMPILE_LIMIT = 8
MODES = ("default", "max-autotune", "reduce-overhead")  # reduce-overhead: CUDA graphs (kernels/runtime/cuda_graphs.py)


class JitFunction:
    """A function compiled on first call for each guard key (see module docstring)."""

    # The backend whose `recomputes` partitions a compiled backward, when not the one that runs it:
    # ahead-of-time compilation traces on the numpy backend but lowers the graphs for triton.
    recompute_backend: str | None = None

    def __init__(self, fn, backend: str | None = None, dynamic: bool = False, mode: str = "default") -> None:
        backends.check_name(backend)
        if not callable(fn):
            raise DTypeError(f"jit: expected a function to compile, got {type(fn).__name__}")
        if mode not in MODES:
            raise UnsupportedError(f"jit: unknown mode {mode!r} (choose from {', '.join(MODES)})")
        self.fn = fn
        self.backend = backend
        self.dynamic = dynamic
        self.mode = mode
        self._variants: dict = {}   # guard key -> the entries compiled for it, tried in order
        self.hits = 0
        self.misses = 0
        self.recompile_reasons: list[str] = []
        self._lock = threading.Lock()
        self._last_key = None
        functools.update_wrapper(self, fn)

    # ---------------------------------------------------------------- the hot path

    def key_of(self, args: tuple, kwargs: dict):
        if not kwargs and all(type(a) is Tensor for a in args):
            # The common call, positional tensors only: its spec depends only on how many.
            leaves = list(args)
            spec = _POSITIONAL_TENSOR_SPECS.get(len(args))
            if spec is None:
                spec = _POSITIONAL_TENSOR_SPECS[len(args)] = pytree.flatten((args, {}), [])
        else:
            leaves = []
            spec = pytree.flatten((args, kwargs), leaves)
        keys = guards.tensor_keys(leaves, self.dynamic)
        # The autocast regions in force decide which casts the trace records (tritonflow/amp).
        return (spec, keys, autograd.is_grad_enabled(), _alias_pattern(leaves), autocast_state_key()), leaves

    def __call__(self, *args, **kwargs):
        if trace_state.current() is not None:
            return self.fn(*args, **kwargs)  # a jitted function called while tracing is inlined
        key, leaves = self.key_of(args, kwargs)
        found = self._variants.get(key)
        if found and found[0].unguarded:   # nothing captured, no globals read: the key decides alone
            entry, bound = found[0], ()
            self.hits += 1
        else:
            entry, bound = self._find(key, leaves)
            if entry is None:
                entry, bound = self._compile(key, leaves, args, kwargs)
            else:
                self.hits += 1
        recorder = profiler_hooks.active()   # tritonflow.profile(): time this call
        if recorder is not None:
            return recorder.compiled_call(self, entry, lambda: self._run(entry, leaves, bound))
        return self._run(entry, leaves, bound)

    @property
    def entries(self) -> dict:
        """Every compiled entry, keyed by (guard key, its position among the entries for that key)."""
        return {(key, i): e for key, found in self._variants.items() for i, e in enumerate(found)}

    def _find(self, key, leaves: list, stale: list | None = None):
        """(entry, its outside tensors for this call) of the first entry for `key` whose captured
        state binds; (None, why the last one did not) when none does. Entries that can never bind
        again (a rebound global, a captured tensor replaced) are added to `stale`."""
        reason = None
        for entry in self._variants.get(key, ()):
            reason = guards.changed_free_value(entry.free_guards) if entry.free_guards else None
            if reason is not None:
                reason += " (pass it as an argument to avoid recompiling)"
                gone = True
            else:
                bound, reason, gone = entry.binding.bind(leaves, entry.arg_names)
                if reason is None:
                    return entry, bound
            if gone and stale is not None:
                stale.append(entry)
        return None, reason

    def entry_for(self, args: tuple, kwargs: dict):
        """(the compiled entry for these arguments, compiled now on a miss; the flattened tensors)."""
        key, leaves = self.key_of(args, kwargs)
        entry, _ = self._find(key, leaves)
        if entry is None:
            entry, _ = self._compile(key, leaves, args, kwargs)
        return entry, leaves

    @staticmethod
    def input_arrays(entry: CompiledEntry, leaves: list, bound: list | None = None) -> list:
        """The graph's inputs for one run: the arguments, the captured tensors (`bound`: the outside
        tensors found for this call, found now when not given), then fresh random seed and offset
        (drawing them advances the generator)."""
        traced = entry.traced
        if bound is None:
            bound, why, _ = entry.binding.bind(leaves, entry.arg_names)
            if why is not None:
                raise TraceError(f"jit: this entry does not apply to these arguments: {why}")
        arrays = [t._data for t in leaves]
        device = entry.device
        for index in (traced.state.captured if traced.state else ()):
            t = bound[index]
            arrays.append(t._data if t.device == device or device == "cpu" else t.to(device)._data)
        if traced.rng_count:
            seed, offset = default_generator.take(traced.rng_count)
            arrays += _rng_arrays(seed, offset, entry.device)
        return arrays

    @property
    def display_name(self) -> str:
        """The name graphs, logs and reports use: the function's, or the module class's."""
        name = getattr(self, "__name__", None) or type(self.fn).__name__
        return name.replace("<", "").replace(">", "")

    def _run(self, entry: CompiledEntry, leaves: list, bound: list):
        traced = entry.traced
        state = traced.state
        for effect in state.before:
            effect.run()
        arrays = self.input_arrays(entry, leaves, bound)
        if entry.backward is not None:
            result = entry.backward(entry, leaves, arrays, bound)
        else:
            outs = entry.runner(arrays, entry.device)
            if environment.verify_mode():  # TRITONFLOW_VERIFY=1: check each kernel against the interpreter on first use
                from tritonflow.spec_check import maybe_verify
                maybe_verify(self, entry, arrays, outs)
            n = traced.n_outputs
            results = [Tensor._wrap(o, node.type.dtype, entry.device)
                       for o, node in zip(outs[:n], entry.graph.outputs)]
            write_back(traced, leaves, bound, outs, entry)
            result = pytree.unflatten(traced.out_spec, results)
        for effect in state.after:
            effect.run()
        return result

    # ---------------------------------------------------------------- compiling

    def _compile(self, key, leaves, args, kwargs) -> tuple:
        with self._lock:
            stale: list = []
            entry, found = self._find(key, leaves, stale)
            if entry is not None:
                self.hits += 1
                return entry, found
            if stale:
                self._variants[key] = [e for e in self._variants[key] if e not in stale]
            self.misses += 1
            if found is not None:
                self._note_recompile(found)
            elif self._variants:
                self._note_recompile(self._describe_miss(key))
            entry = self.build(key, leaves, args, kwargs)
            # Taken after tracing, so a function that updates a global as a side effect (a trace
            # counter) does not invalidate its own entry.
            free_guards = guards.free_value_guards(self.fn)
            entry.free_guards = free_guards
            entry.unguarded = not free_guards and entry.binding.empty
            entry.traced.forget_gradients()
            entry.guards = (list(entry.guards) + entry.binding.describe(entry.arg_names)
                            + guards.describe_free_value_guards(free_guards))
            bound, why, _ = entry.binding.bind(leaves, entry.arg_names)
            if why is not None:
                raise TraceError(f"jit: {self.display_name} changed the state it captured while it was traced "
                                 f"({why}); Python side effects run only when tracing, so the graph would be "
                                 f"stale at once. Make the change outside the jitted function")
            self._variants.setdefault(key, []).append(entry)
            self._last_key = key
            return entry, bound

    def build(self, key, leaves, args, kwargs, record_passes: list | None = None) -> CompiledEntry:
        with gc_paused():
            return self._build(key, leaves, args, kwargs, record_passes)

    def _build(self, key, leaves, args, kwargs, record_passes: list | None) -> CompiledEntry:
        traced = trace(self.fn, args, kwargs, leaves, key[1], self.display_name)
        device = _device_of(leaves) if leaves else _captured_device(traced.captured)
        backend = self.backend or backends.default_backend(device)
        # Parameters of a module the function reads from outside (a global or closure model) are
        # captured inputs: they need the compiled backward as much as arguments that require grad,
        # unless the function ran its own backward (a training step): then it leaves gradients.
        needs_grad = key[2] and any(t.requires_grad for t in (*leaves, *traced.captured)) and \
            not traced.grads and not traced.state.ran_backward
        record = record_passes
        if record is None and needs_grad:
            record = []  # the differentiable entry keeps its own record
        graph = run_passes(traced.graph, record=record)
        guard_lines = guards.describe_guards(key[0], key[1], self.dynamic)
        if needs_grad:
            return build_differentiable_entry(self, key, traced, graph, record, backend, device, guard_lines, leaves)
        runner = make_runner(graph, backend, device, self.mode)
        return CompiledEntry(key, traced, graph, record, runner, backend, device, guard_lines)

    def _describe_miss(self, key) -> str:
        previous = self._last_key if self._last_key in self._variants else next(iter(self._variants))
        if previous[:4] == key[:4] and previous[4] != key[4]:
            return f"autocast regions changed from {list(previous[4]) or 'none'} to {list(key[4]) or 'none'}"
        return guards.describe_change(previous, key)

    def _note_recompile(self, reason: str) -> None:
        self.recompile_reasons.append(reason)
        name = getattr(self.fn, "__qualname__", "fn")
        if environment.log_enabled("recompiles"):
            print(f"[tritonflow] recompiling {name}: {reason}", file=sys.stderr)
        if self.misses == RECOMPILE_LIMIT:
            hint = ""
            if "shape changed" in reason and not self.dynamic:
                hint = "; shapes keep changing: try tritonflow.jit(dynamic=True)"
            warnings.warn(f"tritonflow: {name} has been compiled {RECOMPILE_LIMIT} times; the guard that "
                          f"keeps failing: {reason}{hint}", stacklevel=3)

    # ---------------------------------------------------------------- introspection

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self.hits, self.misses, sum(len(found) for found in self._variants.values()))

    def cache_clear(self) -> None:
        self._variants.clear()
        self.hits = self.misses = 0
        self.recompile_reasons.clear()

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        # A bound method: calls pass `obj` first, and attribute reads (cache_info, entries) reach us.
        return types.MethodType(self, obj)

    def __repr__(self) -> str:
        return f"<tritonflow.jit {getattr(self.fn, '__qualname__', self.fn)!r}>"


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while compiling.

    A trace allocates many long-lived objects (nodes, types, locations) and no cycles worth
    collecting; each allocation burst triggers a full collection that rescans the whole growing
    heap, which made compile time grow faster than linearly (about 30% of a 10,000-node compile).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# Number of positional tensor arguments -> pytree.flatten's spec of such a call (see key_of).
_POSITIONAL_TENSOR_SPECS: dict = {}


def _alias_pattern(leaves: list) -> tuple:
    """() when all tensor arguments are distinct, else each one's first position (the trace shares them)."""
    if len({id(t) for t in leaves}) == len(leaves):
        return ()
    first: dict = {}
    pattern = tuple(first.setdefault(id(t), i) for i, t in enumerate(leaves))
    return pattern if len(first) < len(leaves) else ()


def _device_of(tensors: list) -> str:
    """The one device of the tensor arguments (or, with none, of the captured tensors)."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise DeviceError(f"jit: tensor arguments live on different devices ({', '.join(sorted(devices))}); "
                          f"move them to one device first")
    return devices.pop() if devices else "cpu"


def _captured_device(captured: list) -> str:
    """A function without tensor arguments runs where the state it captured lives (0-d CPU
    tensors mix with any device, as in PyTorch)."""
    devices = {t.device for t in captured if t.device != "cpu" or t.ndim}
    if len(devices) > 1:
        raise DeviceError(f"jit: the tensors the function captured live on different devices "
                          f"({', '.join(sorted(devices))}); move them to one device first")
    return devices.pop() if devices else "cpu"


def _rng_arrays(seed: int, offset: int, device: str) -> list:
    import numpy as np
    arrays = [np.asarray(seed, np.int64), np.asarray(offset, np.int64)]
    if device != "cpu":
        from tritonflow.storage import numpy_to_torch
        arrays = [numpy_to_torch(a, device) for a in arrays]
    return arrays


def jit(fn=None, *, backend: str | None = None, dynamic: bool = False, mode: str = "default"):
    """Compile `fn`: `@jit`, `@jit(backend="triton", dynamic=True)`, or `jit(fn)`."""
    if fn is None:
        return lambda f: JitFunction(f, backend=backend, dynamic=dynamic, mode=mode)
    if isinstance(fn, JitFunction):
        return fn
    if not callable(fn):
        from tritonflow.errors import DTypeError
        raise DTypeError(f"jit: expected a function to compile, got {type(fn).__name__}")
    return JitFunction(fn, backend=backend, dynamic=dynamic, mode=mode)


def as_jit_function(fn, args: tuple, kwargs: dict, backend: str | None = None, who: str = "jit"):
    """(JitFunction, its arguments) for what explain() and debug.verify() are handed: a jitted
    function as is, an object that says which jitted call it makes (`tritonflow.compile(module)`'s
    result, through `__tritonflow_jit_call__`) as that call, so the report is about the graph that
    runs, anything else callable jitted now with `backend`."""
    jit_call = getattr(type(fn), "__tritonflow_jit_call__", None)
    if jit_call is not None:
        return jit_call(fn, args, kwargs)
    if isinstance(fn, JitFunction):
        return fn, args, kwargs
    if not callable(fn):
        raise DTypeError(f"{who}: expected a function or a jitted function, got {type(fn).__name__}")
    return JitFunction(fn, backend=backend), args, kwargs
