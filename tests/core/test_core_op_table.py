"""Generated from the op table: every primitive with samples, for every dtype it accepts.

For each (op, dtype) and each of the op's sample inputs (0-d, odd sizes, size-1 and broadcast
dims, empty tensors), plus a non-contiguous variant (inputs stored transposed and read through
`tritonflow.permute`):

- eager result == an independent reference (tests/core/core_reference.py: torch on CPU or NumPy
  on float64-upcast inputs) within DESIGN.md's tolerances, with rtol scaled by the reduction length
  for reductions, scans and matmul; NaN positions must match;
- the op table's own NumPy meaning on float64 inputs agrees with the same reference;
- jit with the numpy backend == eager, bit for bit;
- jit with the triton backend matches the reference.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import tritonflow as tf
from tritonflow import dtypes as D
from tritonflow.dispatch import apply
from tritonflow.ir.types import TensorType
from tritonflow.ops import OPS, Kind

from core_reference import reference, upcast
from helpers import assert_close

DTYPES = [D.float32, D.float16, D.bfloat16, D.float64, D.int32, D.int64, D.bool_]


def _accepts(op, dtype) -> bool:
    return not op.dtypes or dtype.name in op.dtypes


def _cases():
    cases = []
    for op in OPS.values():
        if op.samples is None:
            continue
        for dtype in DTYPES:
            if _accepts(op, dtype) and op.samples(dtype):
                cases.append(pytest.param(op, dtype, id=f"{op.name}-{dtype.name}"))
    return cases


CASES = _cases()


def _rtol_scale(op, arrays, attrs) -> float:
    """Reductions, scans and matmul accumulate: widen rtol by the number of terms summed."""
    if op.kind is Kind.REDUCTION:
        x = arrays[0]
        return float(max(1, math.prod(x.shape[d] for d in attrs["dims"]))) if x.ndim else 1.0
    if op.kind is Kind.SCAN:
        return float(max(1, arrays[0].shape[attrs["dim"]])) if arrays[0].ndim else 1.0
    if op.kind is Kind.MATMUL:
        return float(max(1, arrays[0].shape[-1]))
    return 1.0


def _variants(arrays):
    """(stored arrays, permutations to apply): contiguous, then stored transposed where possible."""
    yield arrays, [None] * len(arrays)
    if any(a.ndim >= 2 for a in arrays):
        stored, perms = [], []
        for a in arrays:
            if a.ndim >= 2:
                perm = list(range(a.ndim))
                perm[-1], perm[-2] = perm[-2], perm[-1]
                stored.append(np.ascontiguousarray(np.transpose(a, perm)))
                perms.append(tuple(perm))  # a swap is its own inverse
            else:
                stored.append(a)
                perms.append(None)
        yield stored, perms


def _views(tensors, perms):
    return [t if p is None else tf.permute(t, p) for t, p in zip(tensors, perms)]


def _jitted(op, attrs, perms, backend):
    def program(*xs):
        return apply(op, _views(list(xs), perms), attrs)
    program.__name__ = op.name
    return tf.jit(program, backend=backend)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fV":
        return np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True)
    return np.array_equal(a, b)


@pytest.mark.parametrize("op,dtype", CASES)
def test_op_matches_reference(op, dtype, backend):
    for arrays, attrs in op.samples(dtype):
        want = reference(op.name, arrays, attrs)
        out_type = op.infer([TensorType(a.shape, D.from_numpy_dtype(a.dtype)) for a in arrays], attrs)
        scale = _rtol_scale(op, arrays, attrs)
        label = f"{op.name} {dtype.name} {[a.shape for a in arrays]} {attrs}"
        assert tuple(out_type.shape) == want.shape, label

        if backend == "numpy":
            # The op table's meaning, run on float64-upcast inputs, is the reference's meaning too.
            spec = op.numpy(*[upcast(a) for a in arrays], **attrs)
            assert_close(np.asarray(spec).astype(want.dtype) if want.dtype != np.bool_ else spec, want,
                         D.float64 if want.dtype.kind == "f" else want.dtype, rtol_scale=max(scale, 1e3) if
                         op.kind is Kind.CREATION else scale, msg=f"op.numpy {label}")

        for stored, perms in _variants(arrays):
            tensors = [tf.from_numpy(a) for a in stored]
            if backend == "numpy":
                eager = apply(op, _views(tensors, perms), attrs)
                assert eager.dtype is out_type.dtype and tuple(eager.shape) == want.shape, label
                assert_close(eager.numpy(), want, out_type.dtype, rtol_scale=scale, msg=f"eager {label}")
                jitted = _jitted(op, attrs, perms, "numpy")(*tensors).numpy()
                assert _same_bits(jitted, eager.numpy()), f"jit != eager for {label}"
                # A non-contiguous eager tensor passed straight into jit.
                views = _views(tensors, perms)
                direct = tf.jit(lambda *xs: apply(op, list(xs), attrs))(*views).numpy()
                assert _same_bits(direct, eager.numpy()), f"jit(view) != eager for {label}"
            else:
                got = _jitted(op, attrs, perms, "triton")(*tensors)
                assert got.dtype is out_type.dtype, label
                assert_close(got.numpy(), want, out_type.dtype, rtol_scale=scale, msg=f"triton {label}")


# ---------------------------------------------------------------- special values

SPECIALS = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1.5, -2.5, 0.5]
FLOAT_DTYPES = [D.float32, D.float16, D.bfloat16, D.float64]
UNARY_FLOAT = [op for op in OPS.values() if op.kind is Kind.ELEMENTWISE and len(op.samples(D.float32)[0][0]) == 1
               and op.name != "cast"]
BINARY_FLOAT = [op for op in OPS.values() if op.kind is Kind.ELEMENTWISE and len(op.samples(D.float32)[0][0]) == 2]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("op", UNARY_FLOAT + BINARY_FLOAT, ids=lambda o: o.name)
def test_special_values(op, dtype, backend):
    """NaN, +-inf and signed zeros: NaN positions, infinities and values match the reference."""
    values = np.asarray(SPECIALS, dtype=np.float64)
    if len(op.samples(D.float32)[0][0]) == 1:
        arrays = [values.astype(dtype.np)]
    else:
        a, b = np.meshgrid(values, values, indexing="ij")
        arrays = [a.astype(dtype.np), b.astype(dtype.np)]
    want = reference(op.name, arrays, {})
    out_dtype = op.infer([TensorType(x.shape, dtype) for x in arrays], {}).dtype
    tensors = [tf.from_numpy(x) for x in arrays]
    if backend == "numpy":
        got = apply(op, tensors, {}).numpy()
    else:
        got = tf.jit(lambda *xs: apply(op, list(xs), {}), backend="triton")(*tensors).numpy()
    assert_close(got, want, out_dtype, msg=f"{op.name} on special values")


# ---------------------------------------------------------------- dtypes an op rejects

REJECTING = [pytest.param(op, dt, id=f"{op.name}-{dt.name}") for op in OPS.values() if op.dtypes
             for dt in DTYPES if not _accepts(op, dt) and op.kind is Kind.ELEMENTWISE]


@pytest.mark.parametrize("op,dtype", REJECTING)
def test_primitive_rejects_dtype(op, dtype):
    arrays, attrs = op.samples(D.float32)[0]
    types = [TensorType(a.shape, dtype if a.dtype.kind == "f" else D.from_numpy_dtype(a.dtype)) for a in arrays]
    with pytest.raises(tf.DTypeError, match=rf"{op.name}: dtype {dtype.name} is not supported"):
        op.infer(types, attrs)


def test_every_op_has_samples():
    # Collectives need other processes: tests/distributed checks them across two ranks.
    missing = [op.name for op in OPS.values() if op.samples is None and not op.extra.get("collective")]
    assert not missing, f"ops without samples (add them to the op table): {missing}"
