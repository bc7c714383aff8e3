"""Lowering stage: small @triton.jit helpers the generated kernels call (imported as `th`).

Two reasons they exist. (1) Semantics Triton does not spell directly: NaN-propagating
max/min, Python-style floor division and remainder, integer powers, Philox uniforms laid out
like tritonflow/philox.py, a stable sort of a row carrying positions. (Reductions' combine
functions are not here: they come from the op table and are written into each kernel's module.)
(2) Triton's interpreter (CPU tests) cannot call libdevice, so the libdevice functions the op
table names are also written here with `tl` primitives, in numerically careful forms, under
libdevice's names; kernels generated for the interpreter call these, kernels for a GPU call
libdevice itself.
"""
from __future__ import annotations


import triton
import triton.language as tl

_INF = tl.constexpr(float("inf"))
_NAN = tl.constexpr(float("nan"))


# ---------------------------------------------------------------- binary ops with Python semantics

@triton.jit
def maximum(a, b):
    return tl.where((a > b) | (a != a), a, b)


@triton.jit
def minimum(a, b):
    return tl.where((a < b) | (a != a), a, b)


@triton.jit
def floor_divide_int(a, b):
    # Triton's // truncates toward zero; Python floors. Division by zero gives 0 (op table).
    safe = tl.where(b == 0, 1, b)
    q = a // safe
    r = a - q * safe
    q = tl.where((r != 0) & ((r < 0) != (safe < 0)), q - 1, q)
    return tl.where(b == 0, 0, q)


@triton.jit
def remainder_int(a, b):
    safe = tl.where(b == 0, 1, b)
    r = a % safe
    r = tl.where((r != 0) & ((r < 0) != (safe < 0)), r + safe, r)
    return tl.where(b == 0, 0, r)


@triton.jit
def remainder_float(a, b):
    # NumPy: fmod, then moved into the divisor's sign.
    r = a % b
    return tl.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


@triton.jit
def floor_divide_float(a, b):
    # NumPy's algorithm: exact fmod, then round the (nearly integral) quotient.
    r = a % b
    div = (a - r) / b
    div = tl.where((r != 0) & ((r < 0) != (b < 0)), div - 1.0, div)
    q = tl.floor(div)
    q = tl.where(div - q > 0.5, q + 1.0, q)
    return tl.where(b == 0, a / b, q)


@triton.jit
def pow_int(a, b):
    # Square-and-multiply over the exponent's bits. A negative exponent truncates 1 / a**|b|
    # toward zero (PyTorch, and the op table): 1 for a == 1, +-1 for a == -1, else 0.
    e = tl.maximum(b, 0)
    result = a * 0 + 1
    base = a
    for _ in tl.static_range(63):
        result = tl.where((e & 1) != 0, result * base, result)
        base = base * base
        e = e >> 1
    odd = (b % 2) != 0
    negative = tl.where(a == 1, 1, tl.where(a == -1, tl.where(odd, -1, 1), 0))
    return tl.where(b < 0, negative.to(result.dtype), result)


@triton.jit
def pow_float_portable(a, b):
    # C99/NumPy pow, special cases included: x**0 == 1 and 1**y == 1 (even for NaN), a finite
    # negative base with a finite non-integer exponent is NaN, (-0.0)**odd keeps the sign,
    # (+-1)**(+-inf) == 1, (-inf)**y is +-inf or +-0 (never NaN).
    abs_a = tl.abs(a)
    magnitude = tl.exp2(b.to(tl.float64) * tl.log2(abs_a.to(tl.float64))).to(a.dtype)
    finite_b = tl.abs(b) < _INF
    integral = tl.floor(b) == b
    half = b * 0.5
    odd = integral & finite_b & (tl.floor(half) != half)
    sign_bit = (a < 0) | ((a == 0) & ((1.0 / a) < 0))  # -0.0 counts as negative
    result = tl.where(odd & sign_bit, magnitude * -1.0, magnitude)  # `-x` is `0 - x`: +0.0 at zero
    no_real_power = (a < 0) & (abs_a < _INF) & finite_b & ~integral
    result = tl.where(no_real_power, _NAN, result)
    result = tl.where((abs_a == 1.0) & ~finite_b & (b == b), 1.0, result)
    result = tl.where(a == 1.0, 1.0, result)
    return tl.where(b == 0, 1.0, result)


# ---------------------------------------------------------------- Philox uniforms

@triton.jit
def philox_uniform(seed, counter, LANE: tl.constexpr):
    # Counter words (low, high, 0, 0) of the 64-bit offset + i, as tritonflow/philox.py defines
    # them: randint4x splits an int64 counter itself (a uint32 cast dropped the high word).
    r0, r1, r2, r3 = tl.randint4x(seed, counter.to(tl.int64))
    if LANE == 0:
        bits = r0
    elif LANE == 1:
        bits = r1
    elif LANE == 2:
        bits = r2
    else:
        bits = r3
    return tl.uint_to_uniform_float(bits)


# ---------------------------------------------------------------- sorting a row in registers
# A bitonic network over (key, position) pairs, the row viewed as a hypercube [XBLOCK, 2, ..., 2]
# (LOG_N twos) so that "the element whose position differs in bit b" is the other element along
# one size-2 axis. Keys are integers whose signed order is the wanted order (the kernel maps
# values to keys); positions break ties, so the sort is stable and every pair is distinct.


@triton.jit
def _position_bit(LOG_N: tl.constexpr, bit: tl.constexpr):
    # Bit `bit` of the position along the row (0 or 1), shaped to broadcast over the hypercube.
    return tl.reshape(tl.arange(0, 2), [1] * (LOG_N - bit) + [2] + [1] * bit)


@triton.jit
def _compare_exchange(keys, positions, LOG_N: tl.constexpr, stage: tl.constexpr, bit: tl.constexpr):
    axis: tl.constexpr = LOG_N - bit
    # The partner's value: the pair's sum less one's own (exact in wrapping integer arithmetic;
    # a sum reduces fast under the interpreter, unlike a generic reduce).
    other_key = tl.sum(keys, axis, keep_dims=True) - keys
    other_position = tl.sum(positions, axis, keep_dims=True) - positions
    other_first = (other_key < keys) | ((other_key == keys) & (other_position < positions))
    lower = _position_bit(LOG_N, bit) == 0
    if stage < LOG_N:
        # Merging runs of 2**stage: alternate runs are sorted the other way round (bitonic).
        ascending = _position_bit(LOG_N, stage) == 0
        take = other_first == (lower == ascending)
    else:
        take = other_first == lower
    return tl.where(take, other_key, keys), tl.where(take, other_position, positions)


@triton.jit
def sort_with_positions(keys, positions, LOG_N: tl.constexpr):
    """Sort each row of `keys` ([XBLOCK, 2**LOG_N] integers) ascending, `positions` alongside."""
    XB: tl.constexpr = keys.shape[0]
    RB: tl.constexpr = keys.shape[1]
    k = tl.reshape(keys, [XB] + [2] * LOG_N)
    p = tl.reshape(positions, [XB] + [2] * LOG_N)
    for stage in tl.static_range(1, LOG_N + 1):
        for step in tl.static_range(stage):
            k, p = _compare_exchange(k, p, LOG_N, stage, stage - 1 - step)
    return tl.reshape(k, [XB, RB]), tl.reshape(p, [XB, RB])


# ---------------------------------------------------------------- libdevice stand-ins (interpreter)
# Named as the libdevice functions the op table spells (`libdevice.log1p`): under Triton's
# interpreter the generated kernels call these (`th.log1p`); on a GPU they call libdevice.

pow = pow_float_portable  # noqa: A001  (libdevice's name)


@triton.jit
def log1p(x):
    # Goldberg: log(u) * x / (u - 1) keeps full relative accuracy near 0.
    # u == inf (x == inf) would give inf / inf; log1p(inf) is inf.
    u = 1.0 + x
    safe = tl.where((u == 1.0) | (u == _INF), 2.0, u)
    body = tl.where(u == 1.0, x, tl.log(safe) * x / (safe - 1.0))
    return tl.where(u == _INF, u, body)


@triton.jit
def expm1(x):
    # Kahan: (u - 1) * x / log(u).
    u = tl.exp(x)
    safe = tl.where((u == 1.0) | (u - 1.0 == -1.0), 2.0, u)
    body = (safe - 1.0) * x / tl.log(safe)
    body = tl.where(u - 1.0 == -1.0, -1.0, body)
    body = tl.where(u == 1.0, x, body)
    return tl.where(x > 80.0, u, body)


@triton.jit
def tanh(x):
    e = expm1(-2.0 * tl.abs(x))
    t = -e / (2.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def rsqrt(x):
    # sqrt_rn is float32-only; float64 sqrt is correctly rounded. Both branches need the explicit
    # else: Triton still compiles the statements after a compile-time `if` that returned.
    if x.dtype == tl.float64:
        r = 1.0 / tl.sqrt(x)
    else:
        r = 1.0 / tl.sqrt_rn(x)
    return r


@triton.jit
def nearbyint(x):
    # Round half to even.
    f = tl.floor(x)
    d = x - f
    up = (d > 0.5) | ((d == 0.5) & ((f % 2.0) != 0))
    return tl.where(up, f + 1.0, f)
