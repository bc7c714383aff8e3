"""Framework API: random numbers — counter-based Philox streams, the same numbers on every backend.

Each draw reserves counters from a generator (tritonflow/philox.py); under jit a graph reads a seed
and a base offset as inputs, so every call draws fresh numbers without retracing. Draws built on
uniforms (randn, randint, bernoulli, randperm, multinomial) reserve what their uniforms reserve.
"""
from __future__ import annotations

import math

from tritonflow import dtypes as D
from tritonflow import philox
from tritonflow.api.convert import cast, scalar_tensor
from tritonflow.api.creation import _place, _shape, full
from tritonflow.api.elementwise import clamp, cos, floor, log, sqrt
from tritonflow.api.reduction import cumsum, reduce_sum
from tritonflow.api.shape import narrow, reshape, squeeze, unsqueeze
from tritonflow.api.sorting import argsort, topk
from tritonflow.dispatch import apply
from tritonflow.errors import DTypeError, InvalidValueError, ShapeError, UnsupportedError
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


def bernoulli(p, *, generator=None):
    """1 with probability `p` (elementwise, p in [0, 1]), else 0, in p's dtype."""
    if not p.dtype.is_floating_point:
        raise DTypeError(f"bernoulli: probabilities must be a floating point tensor, got {p.dtype.name}")
    return cast(_uniform(tuple(p.shape), 0, generator) < p, p.dtype)


def randperm(n: int, *, dtype=None, device=None, generator=None):
    """A random permutation of 0..n-1 (the order that sorts n uniforms)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ShapeError(f"randperm: n must be a non-negative int, got {n!r}")
    out = argsort(_uniform((n,), 0, generator))
    return _place(cast(out, dtype or D.int64), device, False)


_TINY_UNIFORM = 1e-12  # keeps log(u) finite when a uniform draw is exactly 0


def multinomial(probs, num_samples: int, replacement: bool = False, *, generator=None):
    """Category indices drawn from each row of `probs` (1-d, or 2-d: one distribution per row; the
    weights need not sum to 1), as torch.multinomial, from tritonflow's Philox stream.

    Without replacement, the num_samples largest log(weight) + Gumbel noise are exactly successive
    draws without replacement (the Gumbel-top-k trick). With replacement each draw u * total picks
    the first category whose running sum of weights exceeds it (in float64, so a category of weight
    0 is never picked). The values are checked when eager (negative, inf or NaN weights, a row of
    zeros, too few nonzero weights to draw without replacement); under jit they are not."""
    if not probs.dtype.is_floating_point:
        raise DTypeError(f"multinomial: probabilities must be a floating point tensor, got {probs.dtype.name}")
    if probs.ndim not in (1, 2):
        raise ShapeError(f"multinomial: probabilities must be 1-d or 2-d, got shape {tuple(probs.shape)}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
        raise ShapeError(f"multinomial: num_samples must be a positive int, got {num_samples!r}")
    categories = probs.shape[-1]
    if not replacement and isinstance(categories, int) and num_samples > categories:
        raise ShapeError(f"multinomial: cannot draw {num_samples} samples without replacement from "
                         f"{categories} categories")
    if probs._node is None:
        _check_distribution(probs, num_samples, replacement)
    rows = probs if probs.ndim == 2 else unsqueeze(probs, 0)
    if replacement:
        drawn = _draw_with_replacement(rows, num_samples, generator)
    else:
        u = clamp(_uniform(tuple(rows.shape), 0, generator), _TINY_UNIFORM)
        keys = log(cast(rows, D.float32 if rows.dtype is not D.float64 else D.float64)) - log(-log(u))
        drawn = topk(keys, num_samples, -1).indices
    return drawn if probs.ndim == 2 else squeeze(drawn, 0)


def _draw_with_replacement(rows, num_samples: int, generator):
    count, categories = rows.shape
    running = cumsum(cast(rows, D.float64), -1)                               # (rows, categories)
    total = narrow(running, 1, categories - 1, 1)                             # (rows, 1)
    u = cast(_uniform((count, num_samples), 0, generator), D.float64) * total  # below total: u < 1
    passed = reshape(running, (count, 1, categories)) <= reshape(u, (count, num_samples, 1))
    return reduce_sum(passed, (2,), False)


def _check_distribution(probs, num_samples: int, replacement: bool) -> None:
    import numpy as np
    values = np.asarray(probs.detach().numpy(), dtype=np.float64).reshape(-1, probs.shape[-1])
    if not np.isfinite(values).all() or (values < 0).any():
        raise InvalidValueError("multinomial: the probabilities contain inf, NaN or a value below 0")
    if (values.sum(axis=1) <= 0).any():
        raise InvalidValueError("multinomial: a row of probabilities sums to 0 (no category can be drawn)")
    if not replacement and ((values > 0).sum(axis=1) < num_samples).any():
        raise InvalidValueError(f"multinomial: a row has fewer than {num_samples} categories of nonzero "
                                f"probability, so {num_samples} cannot be drawn without replacement")
