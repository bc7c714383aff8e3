"""Online (single-pass) sums of exponentials in looped reductions (kernels/codegen/online_sum.py).

Rows longer than the persistent limit take the looped variant; softmax, log_softmax,
logsumexp and cross-entropy must then read the row twice at most (statistics, then output),
with special values (+inf, all -inf rows, NaN) giving exactly what the NumPy backend gives.
References are float64 NumPy; the traced graphs are the framework's own composites.
"""

import numpy as np
import pytest

import tritonflow as tf
import tritonflow.nn.functional as F
from kernel_helpers import assert_close
from tritonflow.kernels.heuristics import PERSISTENT_MAX
from tritonflow import dtypes as D

COLS = PERSISTENT_MAX + 808          # not a power of two, past the persistent limit
F32 = D.float32


def _rows(special: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.uniform(-30, 30, (4, COLS)).astype(np.float32)
    if special:
        x[1, 17] = np.inf            # a row holding +inf
        x[2, :] = -np.inf            # a row of -inf only
        x[3, 5] = np.nan             # a row holding NaN
    return x


def _passes(fn, x) -> list:
    """Per kernel, the number of loops over the row outside the special-value fallback."""
    counts = []
    for k in tf.explain(tf.jit(fn, backend="triton"), tf.tensor(x)).kernels:
        source = k.source
        fallback = source.split("if tl.sum(")
        loops = fallback[0].count("for roffset")
        for part in fallback[1:]:
            # the fallback's own loop is the first one after the `if`; later loops count
            loops += part.count("for roffset") - 1
        counts.append(loops)
    return counts


def _np_log_softmax(x):
    with np.errstate(all="ignore"):
        m = x.max(1, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(1, keepdims=True))


def _np_logsumexp(x):
    with np.errstate(all="ignore"):
        m = x.max(1, keepdims=True)
        safe = np.where(np.isinf(m), 0, m)
        return (np.log(np.exp(x - safe).sum(1, keepdims=True)) + safe)[:, 0]


# (function, float64 reference, loops over the row: one for the statistics, one per full output)
CASES = {
    "softmax": (lambda x: F.softmax(x, -1), lambda x: np.exp(_np_log_softmax(x)), 2),
    "log_softmax": (lambda x: F.log_softmax(x, -1), _np_log_softmax, 2),
    "logsumexp": (lambda x: tf.logsumexp(x, 1), _np_logsumexp, 1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_long_rows_two_passes_and_match_float64(name):
    fn, ref, loops = CASES[name]
    x = _rows(special=False)
    jitted = tf.jit(fn, backend="triton")
    got = jitted(tf.tensor(x)).numpy()
    assert_close(got, ref(x.astype(np.float64)), F32, scale=64)
    assert _passes(fn, x) == [loops]


@pytest.mark.parametrize("name", list(CASES))
def test_long_rows_special_values_match_numpy_backend(name):
    fn, _, _ = CASES[name]
    x = _rows(special=True)
    got = tf.jit(fn, backend="triton")(tf.tensor(x)).numpy()
    want = tf.jit(fn, backend="numpy")(tf.tensor(x)).numpy()
    assert_close(got, want.astype(np.float64), F32, scale=64)


def test_cross_entropy_long_rows():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, COLS)).astype(np.float32) * 4
    target = np.array([0, COLS - 1, 77])
    fn = lambda lg, t: F.cross_entropy(lg, t)  # noqa: E731
    got = tf.jit(fn, backend="triton")(tf.tensor(logits), tf.tensor(target)).numpy()
    lp = _np_log_softmax(logits.astype(np.float64))
    assert_close(got, -lp[np.arange(3), target].mean(), F32, scale=64)
    kernels_ = tf.explain(tf.jit(fn, backend="triton"), tf.tensor(logits), tf.tensor(target)).kernels
    assert len(kernels_) <= 2
    first = kernels_[0].source.split("if tl.sum(")[0]
    assert first.count("for roffset") <= 2 and "online" in first
