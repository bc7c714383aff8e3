"""Framework stage: `tritonflow.aot.compile(fn, *args_or_specs, target="sm_90")` — compile ahead of time.

The function is traced the way `tritonflow.jit` traces it, on arguments that may be
`TensorSpec(shape, dtype)`s — a shape and a dtype, no data (a dim may be a name: a dynamic size,
given with `sizes={"batch": 8192}`, 4096 when not given). When a spec has `requires_grad=True`
the joint forward+backward trace is taken and both graphs are compiled, as a jitted training
step would compile them. The final graphs are then lowered for the target and every kernel is
compiled with Triton for it on this machine (no GPU needed; kernels/aot.py), giving a table of
configurations, registers, spills, shared memory, wgmma/TMA use, compile times and the static cost
model's bytes and predicted time. `cost(...)` gives the cost model alone, without compiling.

Compiling fills Triton's cache (TRITON_CACHE_DIR or `cache_dir`) under the keys a run on that GPU
computes, so a machine without a GPU can prepare the kernels for the ones that have it
(`tritonflow precompile`).
"""
from __future__ import annotations

import inspect
from typing import Optional, Sequence, Union

import sympy

from tritonflow import dtypes as D
from tritonflow.errors import ShapeError, TraceError, TritonflowError, UnsupportedError

DEFAULT_DYNAMIC_SIZE = 4096


class TensorSpec:
    """A tensor argument by shape and dtype only: ints, or names for dynamic dims."""

    __slots__ = ("shape", "dtype", "requires_grad")

    def __init__(self, shape: Sequence[Union[int, str]], dtype="float32", requires_grad: bool = False) -> None:
        dims = []
        for d in tuple(shape):
            if isinstance(d, bool) or not isinstance(d, (int, str)) or (isinstance(d, int) and d < 0):
                raise ShapeError(f"TensorSpec: each dim must be a size >= 0 or a name, got {d!r} in {tuple(shape)}")
            if isinstance(d, str) and not d.isidentifier():
                raise ShapeError(f"TensorSpec: a dynamic dim's name must be an identifier, got {d!r}")
            dims.append(d)
        self.shape = tuple(dims)
        self.dtype = D.as_dtype(dtype)
        self.requires_grad = bool(requires_grad)
        if self.requires_grad and not self.dtype.is_floating_point:
            raise ShapeError(f"TensorSpec: only floating-point tensors can require grad, got {self.dtype.name}")

    @classmethod
    def like(cls, tensor) -> "TensorSpec":
        """The spec of a tritonflow tensor (shape, dtype, requires_grad)."""
        return cls(tuple(int(d) for d in tensor.shape), tensor.dtype, tensor.requires_grad)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"TensorSpec({self.shape}, {self.dtype.name}{grad})"


def _meta_tensor(spec: TensorSpec, shape: tuple):
    """A Tensor with a shape and dtype but no storage: tracing reads nothing else of an argument."""
    from tritonflow.tensor_class import Tensor
    t = object.__new__(Tensor)
    t._set_state(None, None, None, spec.dtype, shape, "cpu")
    t.requires_grad = spec.requires_grad
    return t


def _as_meta(args: tuple, kwargs: dict, sizes: dict):
    """(args, kwargs with specs and tensors replaced by meta tensors, tensor keys, symbol values, names)."""
    from tritonflow.tensor_class import Tensor
    symbol_of: dict = {}
    keys: dict = {}                      # id(meta tensor) -> its tensor key (shape key, dtype, device, grad)
    metas: list = []

    def convert(value):
        if isinstance(value, TensorSpec):
            spec = value
        elif isinstance(value, Tensor):
            spec = TensorSpec.like(value)
        else:
            return value
        shape_key, shape = [], []
        for d in spec.shape:
            if isinstance(d, str):
                k = symbol_of.setdefault(d, len(symbol_of))
                shape_key.append(("sym", k))
                shape.append(sympy.Symbol(f"s{k}", integer=True, positive=True))
            else:
                shape_key.append(d)
                shape.append(d)
        meta = _meta_tensor(spec, tuple(shape))
        keys[id(meta)] = (tuple(shape_key), spec.dtype.name, "cpu", spec.requires_grad)
        metas.append(meta)
        return meta

    meta_args, meta_kwargs = _map_tree((args, kwargs), convert)
    unknown = sorted(set(sizes) - set(symbol_of))
    if unknown:
        raise ShapeError(f"aot: sizes given for {', '.join(unknown)}, which no spec names "
                         f"(dynamic dims: {', '.join(symbol_of) or 'none'})")
    symbols = {f"s{k}": int(sizes.get(name, DEFAULT_DYNAMIC_SIZE)) for name, k in symbol_of.items()}
    names = {f"s{k}": name for name, k in symbol_of.items()}
    return meta_args, meta_kwargs, metas, keys, symbols, names


def static_meta_arguments(args: tuple, kwargs: dict, sizes: Optional[dict] = None):
    """(args, kwargs) with every TensorSpec a storage-less tensor of static shape (named dims at their
    size): what explain() traces with when it is given specs."""
    sizes = dict(sizes or {})

    def convert(value):
        if not isinstance(value, TensorSpec):
            return value
        shape = tuple(sizes.get(d, DEFAULT_DYNAMIC_SIZE) if isinstance(d, str) else d for d in value.shape)
        return _meta_tensor(value, shape)
    return _map_tree((args, kwargs), convert)


def _map_tree(obj, convert):
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_map_tree(o, convert) for o in obj)
    if isinstance(obj, list):
        return [_map_tree(o, convert) for o in obj]
    if isinstance(obj, dict):
        return {k: _map_tree(v, convert) for k, v in obj.items()}
    return convert(obj)


def trace_graphs(fn, args: tuple, kwargs: dict, sizes: Optional[dict] = None):
    """([(label, final Graph)], symbol values, symbol display names, function name) for these specs."""
    from tritonflow import autograd
    from tritonflow.jit_function import JitFunction, as_jit_function
    from tritonflow.tracer import pytree
    jitted, args, kwargs = as_jit_function(fn, args, kwargs, who="aot.compile")
    name = jitted.display_name
    meta_args, meta_kwargs, metas, keys, symbols, names = _as_meta(args, kwargs, dict(sizes or {}))
    _check_arity(jitted.fn, meta_args, meta_kwargs, name)
    leaves: list = []
    spec = pytree.flatten((meta_args, meta_kwargs), leaves)
    # Tensors inside other argument structures (a compiled module's parameters) keep their shapes.
    tensor_keys = tuple(keys.get(id(t)) or (tuple(t.shape), t.dtype.name, "cpu", t.requires_grad) for t in leaves)
    key = (spec, tensor_keys, autograd.is_grad_enabled(), ())
    shown = ", ".join(repr(a) for a in args)
    try:
        tracer = JitFunction(jitted.fn, backend="numpy")
        tracer.recompute_backend = "triton"   # the graphs are lowered for triton: partition as it would
        entry = tracer.build(key, leaves, meta_args, meta_kwargs)
    except TritonflowError as exc:
        raise type(exc)(f"aot: the arguments ({shown}) do not fit {name}: {exc.raw_message}", exc.loc) from exc
    graphs = [("forward", entry.graph)]
    backward = getattr(entry, "backward_graph", None)
    if backward is not None:
        graphs.append(("backward", backward))
    return graphs, symbols, names, name


def _check_arity(fn, args: tuple, kwargs: dict, name: str) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TraceError(f"aot: the arguments do not fit {name}{signature}: {exc}") from exc


def compile(fn, *args, target="sm_90", sizes: Optional[dict] = None, mode: str = "default",  # noqa: A001
            jobs: Optional[int] = None, cache_dir: Optional[str] = None, **kwargs):
    """Compile `fn`'s kernels for `target` (module docstring); returns the report (`str()`: its table)."""
    from tritonflow.target import get_target
    resolved = get_target(target)
    graphs, symbols, names, name = trace_graphs(fn, args, kwargs, sizes)
    (report,) = _lowering().compile_ahead([(name, graphs, symbols, resolved)], mode=mode, jobs=jobs,
                                          cache_dir=cache_dir)
    report.symbol_names = names
    return report


def compile_all(functions: list, *, mode: str = "default", jobs: Optional[int] = None,
                cache_dir: Optional[str] = None, share_programs: bool = False) -> list:
    """Reports for [(fn, args, target)], [(fn, args, target, sizes)] or [(fn, args, target, sizes, name)],
    compiled in one pool of workers (a kernel several functions share is compiled once;
    `share_programs`: also kernels equal but for their generated names, see kernels/aot.py)."""
    from tritonflow.target import get_target
    items, names = [], []
    for fn, args, target, *rest in functions:
        sizes = rest[0] if rest else None
        graphs, symbols, symbol_names, name = trace_graphs(fn, tuple(args), {}, sizes)
        items.append((rest[1] if len(rest) > 1 else name, graphs, symbols, get_target(target)))
        names.append(symbol_names)
    reports = _lowering().compile_ahead(items, mode=mode, jobs=jobs, cache_dir=cache_dir,
                                        share_programs=share_programs)
    for report, symbol_names in zip(reports, names):
        report.symbol_names = symbol_names
    return reports


def cost(fn, *args, target="sm_90", sizes: Optional[dict] = None, mode: str = "default", **kwargs):
    """The static cost model of `fn`'s kernels on `target` (bytes, FLOPs, predicted time), without compiling."""
    from tritonflow.target import get_target
    resolved = get_target(target)
    if resolved.interpreted:
        raise UnsupportedError("aot.cost: choose a GPU target (sm_80, sm_89, sm_90, ...)")
    graphs, symbols, _, _ = trace_graphs(fn, args, kwargs, sizes)
    return _lowering().cost([g for _, g in graphs], resolved, symbols, mode=mode)


def _lowering():
    """The triton backend object (the core's registry): the only way the front end reaches kernels/."""
    from tritonflow import backends
    return backends.get("triton")
