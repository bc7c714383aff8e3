"""Sample inputs for the op table's generated tests: odd sizes, 0-d, size-1 and broadcast dims."""
from __future__ import annotations

import numpy as np

from tritonflow import dtypes as D

UNARY_SHAPES = [(), (7,), (3, 5), (2, 1, 4), (0, 3)]
BINARY_SHAPES = [((), ()), ((5,), (5,)), ((3, 4), (4,)), ((2, 1, 3), (1, 4, 1)), ((3, 1), ()), ((0, 2), (2,))]


def random_array(shape, dtype: D.DType, rng: np.random.Generator, low=-3.0, high=3.0) -> np.ndarray:
    """Random values of `dtype` in [low, high]; always an ndarray, 0-d included (never a NumPy scalar)."""
    if dtype.is_bool:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.is_integer:
        lo, hi = (int(low), int(high) + 1)
        if dtype is D.int8:
            lo, hi = max(lo, -100), min(hi, 100)
        return np.asarray(rng.integers(lo, hi, size=shape)).astype(dtype.np)
    return np.asarray(rng.uniform(low, high, size=shape)).astype(dtype.np)


def unary_samples(low=-3.0, high=3.0, nonzero=False):
    def make(dtype: D.DType):
        rng = np.random.default_rng(0)
        out = []
        for shape in UNARY_SHAPES:
            x = random_array(shape, dtype, rng, low, high)
            if nonzero and x.size:
                x = np.where(x == 0, np.asarray(1, dtype=x.dtype), x).astype(dtype.np)
            out.append(([x], {}))
        return out
    return make


def binary_samples(low=-3.0, high=3.0, nonzero_rhs=False, low_rhs=None, high_rhs=None):
    def make(dtype: D.DType):
        rng = np.random.default_rng(1)
        out = []
        for sa, sb in BINARY_SHAPES:
            a = random_array(sa, dtype, rng, low, high)
            b = random_array(sb, dtype, rng, low if low_rhs is None else low_rhs,
                             high if high_rhs is None else high_rhs)
            if nonzero_rhs and b.size:
                b = np.where(b == 0, np.asarray(1, dtype=b.dtype), b).astype(dtype.np)
            out.append(([a, b], {}))
        return out
    return make
