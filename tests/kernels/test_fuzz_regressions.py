"""Regressions the differential fuzzer (tritonflow.fuzz) and the core suites found in the lowering.

Each test names the bug it pins and runs the jitted function on the triton backend (Triton's
interpreter on CPU) against an independent NumPy reference computed in float64 / int64.
"""
from __future__ import annotations

import numpy as np
import pytest

import tritonflow as tf


def _jit(fn):
    return tf.jit(fn, backend="triton")


@pytest.mark.parametrize("shape,dim", [((1, 1), 0), ((1,), 0), ((1, 1, 1), 2), ((1, 4), 0), ((4, 1), 1)])
def test_cumsum_over_size_one_dims(shape, dim):
    # Every dim of size 1 made the store offset a constant: a scalar pointer took a block value.
    x = (np.arange(int(np.prod(shape))) + 1.5).reshape(shape).astype(np.float32)
    got = _jit(lambda a: tf.cumsum(a, dim))(tf.tensor(x)).numpy()
    np.testing.assert_array_equal(got, np.cumsum(x.astype(np.float64), dim).astype(np.float32))


@pytest.mark.parametrize("offset", [2**32 - 3, 2**32 + 9, 2**33 + 5])
@pytest.mark.parametrize("draw", ["rand", "randn"])
def test_jitted_random_past_2_to_32_equals_eager(offset, draw):
    # philox_uniform cast the 64-bit counter to uint32, dropping the high word the NumPy Philox
    # (and Triton's randint4x with an int64 offset) puts in counter word 1.
    from tritonflow import philox
    make = getattr(tf, draw)
    gen = philox.default_generator
    saved = gen.get_state()
    try:
        gen.manual_seed(123)
        gen.offset = offset
        eager = make(7, 5).numpy()
        gen.manual_seed(123)
        gen.offset = offset
        jitted = _jit(lambda x: make(7, 5) + x)(tf.zeros(7, 5)).numpy()
    finally:
        gen.set_state(saved)
    assert np.array_equal(eager, jitted), f"{int((eager != jitted).sum())} of 35 values differ"
