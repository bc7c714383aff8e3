"""Framework API: random numbers — counter-based Philox streams, the same numbers on every backend.

Each draw reserves counters from a generator (tritonflow/philox.py); under jit a graph reads a seed
and a base offset as inputs, so every call draws fresh numbers without retracing.
"""
from __future__ import annotations

import math

from tritonflow import dtypes as D
from tritonflow import philox
from tritonflow.api.convert import cast, scalar_tensor
from tritonflow.api.creation import _place, _shape, full
from tritonflow.api.elementwise import cos, floor, log, sqrt
from tritonflow.dispatch import apply
from tritonflow.errors import ShapeError, UnsupportedError
from tritonflow.ops import creation as C
from tritonflow.tensor_class import Tensor
from tritonflow.tracer import state as trace_state


def manual_seed(seed: int):
    """Seed the default generator (CPU and CUDA share it: the same seed gives the same numbers)."""
    return philox.default_generator.manual_seed(seed)


def seed() -> int:
    return philox.default_generator.seed


def philox_counters(n, lane: int = 0, generator=None, who: str = "rand") -> list:
    """(seed, offset) 0-d int64 tensors for `n` Philox counters: lane 0 reserves n new ones,
    other lanes reuse the n that lane 0 just took (as eagerly). Under jit they are the graph's
    seed input and its base offset plus the counters drawn so far in the trace."""
    ctx = trace_state.current()
    if ctx is None:
        gen = generator or philox.default_generator
        s, offset = gen.take(n) if lane == 0 else (gen.seed, gen.offset - n)
        return [scalar_tensor(s, D.int64), scalar_tensor(offset, D.int64)]
    if not isinstance(n, int):
        raise UnsupportedError(f"{who}: random numbers with dynamic shapes are not supported under jit")
    seed_node, base = ctx.rng_inputs()
    first = ctx.rng_count if lane == 0 else ctx.rng_count - n
    offset_t = Tensor._proxy(base, ctx) + scalar_tensor(first, D.int64)
    if lane == 0:
        ctx.rng_count += n
    return [Tensor._proxy(seed_node, ctx), offset_t]


def _uniform(shape, lane: int, generator=None):
    """Uniform float32 in [0, 1) from the Philox stream, `lane` picking one of four words."""
    n = 1
    for d in shape:
        n = n * d
    if trace_state.current() is not None and isinstance(n, int) and n == 0:
        # An empty draw takes no counters (as eagerly): no seed/offset inputs for the graph.
        return full(tuple(shape), 0.0, dtype=D.float32)
    return apply(C.PHILOX_UNIFORM, philox_counters(n, lane, generator), {"shape": tuple(shape), "lane": lane})


def rand(*shape, dtype=None, device=None, requires_grad=False, generator=None):
    out = _uniform(_shape(shape, "rand"), 0, generator)
    if dtype is not None:
        out = cast(out, dtype)
    return _place(out, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False, generator=None):
    """Standard normal by Box-Muller over two Philox words of the same counters."""
    shape = _shape(shape, "randn")
    u1 = _uniform(shape, 0, generator)
    u2 = _uniform(shape, 1, generator)
    out = sqrt(log(1.0 - u1) * -2.0) * cos(u2 * (2.0 * math.pi))
    if dtype is not None:
        out = cast(out, dtype)
    return _place(out, device, requires_grad)


def randint(low, high=None, size=None, *, dtype=None, device=None, generator=None):
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
