"""Framework API: creating tensors — constants, ranges, and Philox random numbers."""
from __future__ import annotations

import math

import numpy as np

from tritonflow import dtypes as D
from tritonflow import philox, trace_state
from tritonflow.api.convert import cast, scalar_tensor, to
from tritonflow.dispatch import apply
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.ops import creation as C


def _shape(shape, op: str = "full") -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    out = []
    for d in shape:
        if isinstance(d, (bool, float)) or not (isinstance(d, (int, np.integer)) or hasattr(d, "free_symbols")):
            raise ShapeError(f"{op}: shape entries must be integers, got {d!r} in {tuple(shape)}")
        if isinstance(d, (int, np.integer)) and d < 0:
            raise ShapeError(f"{op}: negative dimension {d} in shape {tuple(shape)}")
        out.append(int(d) if isinstance(d, (int, np.integer)) else d)
    return tuple(out)


def _place(t, device, requires_grad):
    if device is not None and str(device) != "cpu" and t._node is None:
        t = to(t, device)
    if requires_grad:
        t.requires_grad_(True)
    return t


def full(shape, fill_value, *, dtype=None, device=None, requires_grad=False):
    shape = _shape((shape,) if isinstance(shape, int) else (tuple(shape),))
    dtype = D.as_dtype(dtype) if dtype is not None else D.dtype_of_scalar(fill_value)
    value = fill_value
    if dtype.is_integer and isinstance(value, float) and not math.isfinite(value):
        raise DTypeError(f"full: cannot fill an {dtype.name} tensor with {value}")
    t = apply(C.FULL, [], {"shape": shape, "value": value, "dtype": dtype})
    return _place(t, device, requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    return full(_shape(shape, "zeros"), 0, dtype=dtype or D.DEFAULT_FLOAT, device=device, requires_grad=requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    return full(_shape(shape, "ones"), 1, dtype=dtype or D.DEFAULT_FLOAT, device=device, requires_grad=requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad=False):
    return zeros(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


def _like(fn):
    def like(x, *args, dtype=None, device=None, requires_grad=False, **kwargs):
        return fn(tuple(x.shape), *args, dtype=dtype or x.dtype, device=device or x.device,
                  requires_grad=requires_grad, **kwargs)
    return like


def _full_shape_first(shape, fill_value, dtype=None, device=None, requires_grad=False):
    return full(shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


zeros_like = _like(lambda shape, **k: zeros(shape, **k))
ones_like = _like(lambda shape, **k: ones(shape, **k))
empty_like = zeros_like
full_like = _like(_full_shape_first)


def iota(shape, dim, *, dtype=D.int64, device=None):
    t = apply(C.IOTA, [], {"shape": tuple(shape), "dim": dim, "dtype": D.as_dtype(dtype)})
    return _place(t, device, False)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ShapeError("arange: step must be non-zero")
    n = max(0, math.ceil((end - start) / step))
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        dtype = D.DEFAULT_FLOAT if is_float else D.int64
    dtype = D.as_dtype(dtype)
    if dtype.is_integer and all(isinstance(v, int) for v in (start, step)):
        out = iota((n,), 0, dtype=dtype)
        if step != 1:
            out = out * step
        if start != 0:
            out = out + start
    else:
        out = cast(iota((n,), 0, dtype=D.float64 if dtype is D.float64 else D.float32), dtype
                   if dtype.is_floating_point else D.float64) * step + start
        out = cast(out, dtype)
    return _place(out, device, requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    dtype = D.as_dtype(dtype) if dtype is not None else D.DEFAULT_FLOAT
    if steps < 0:
        raise ShapeError(f"linspace: number of steps must be non-negative, got {steps}")
    if steps == 1:
        return full((1,), start, dtype=dtype, device=device, requires_grad=requires_grad)
    step = (end - start) / max(steps - 1, 1)
    idx = cast(iota((steps,), 0), D.float64 if dtype is D.float64 else D.float32)
    return _place(cast(idx * step + start, dtype), device, requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    m = n if m is None else m
    out = cast(iota((n, m), 0) == iota((n, m), 1), dtype or D.DEFAULT_FLOAT)
    return _place(out, device, requires_grad)


# ---------------------------------------------------------------- random numbers

def manual_seed(seed: int):
    """Seed the default generator (CPU and CUDA share it: the same seed gives the same numbers)."""
    return philox.default_generator.manual_seed(seed)


def seed() -> int:
    return philox.default_generator.seed


def _uniform(shape, lane: int, generator=None):
    """Uniform float32 in [0, 1) from the Philox stream, `lane` picking one of four words."""
    n = 1
    for d in shape:
        n = n * d
    ctx = trace_state.current()
    if ctx is not None and isinstance(n, int) and n == 0:
        # An empty draw takes no counters (as eagerly): no seed/offset inputs for the graph.
        return full(tuple(shape), 0.0, dtype=D.float32)
    if ctx is not None:
        seed_node, base = ctx.rng_inputs()
        from tritonflow.tensor_class import Tensor
        seed_t = Tensor._proxy(seed_node, ctx)
        # lane 0 reserves n new counters; other lanes reuse the counters lane 0 just took (as eager does)
        first = ctx.rng_count if lane == 0 else ctx.rng_count - n
        offset_t = Tensor._proxy(base, ctx) + scalar_tensor(first, D.int64)
        if lane == 0:
            ctx.rng_count += int(n) if isinstance(n, int) else 0
            if not isinstance(n, int):
                from tritonflow.errors import UnsupportedError
                raise UnsupportedError("rand: random tensors with dynamic shapes are not supported under jit")
        return apply(C.PHILOX_UNIFORM, [seed_t, offset_t], {"shape": tuple(shape), "lane": lane})
    gen = generator or philox.default_generator
    if lane == 0:
        s, offset = gen.take(n)
    else:
        s, offset = gen.seed, gen.offset - n
    return apply(C.PHILOX_UNIFORM, [scalar_tensor(s, D.int64), scalar_tensor(offset, D.int64)],
                 {"shape": tuple(shape), "lane": lane})


def rand(*shape, dtype=None, device=None, requires_grad=False, generator=None):
    out = _uniform(_shape(shape, "rand"), 0, generator)
    if dtype is not None:
        out = cast(out, dtype)
    return _place(out, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False, generator=None):
    """Standard normal by Box-Muller over two Philox words of the same counters."""
    from tritonflow.api.elementwise import cos, log, sqrt
    shape = _shape(shape, "randn")
    u1 = _uniform(shape, 0, generator)
    u2 = _uniform(shape, 1, generator)
    out = sqrt(log(1.0 - u1) * -2.0) * cos(u2 * (2.0 * math.pi))
    if dtype is not None:
        out = cast(out, dtype)
    return _place(out, device, requires_grad)


def randint(low, high=None, size=None, *, dtype=None, device=None, generator=None):
    from tritonflow.api.elementwise import floor
    if high is None:
        low, high = 0, low
    if size is None:
        raise ShapeError("randint: size is required")
    if high <= low:
        raise ShapeError(f"randint: high ({high}) must be greater than low ({low})")
    u = _uniform(_shape((size,) if isinstance(size, int) else (tuple(size),)), 0, generator)
    out = cast(floor(cast(u, D.float64) * float(high - low)), D.int64) + low
    return _place(cast(out, dtype or D.int64), device, False)


def rand_like(x, **kwargs):
    return rand(tuple(x.shape), dtype=kwargs.pop("dtype", x.dtype), device=kwargs.pop("device", x.device), **kwargs)


def randn_like(x, **kwargs):
    return randn(tuple(x.shape), dtype=kwargs.pop("dtype", x.dtype), device=kwargs.pop("device", x.device), **kwargs)


def randint_like(x, low, high=None, **kwargs):
    return randint(low, high, tuple(x.shape), dtype=kwargs.pop("dtype", x.dtype), **kwargs)
