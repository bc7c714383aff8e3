"""The op table drives lowering: a new elementwise op and a new reduction, registered at run time,
lower through their entries alone.

Both ops exist only inside this file (registered by a fixture, removed afterwards): `hypot2`, an
elementwise op whose Triton spelling depends on the dtype, and `reduce_logsumexp`, a reduction whose
entry gives its combine function and identity. Each comes with its NumPy meaning and its vjp.
Jitted on both backends they must give float64 NumPy's values; on the triton backend the pair
fuses into one reduction kernel (persistent and looped rows), and the gradients match central
finite differences of a float64 NumPy implementation written independently of both entries.
"""
from __future__ import annotations

import numpy as np
import pytest

import tritonflow as tf
from tritonflow.dispatch import apply
from tritonflow.errors import DTypeError
from tritonflow.ir.types import TensorType
from tritonflow.ops.codegen_info import ReductionLowering
from tritonflow.ops.registry import OPS, Kind, OpDef, register, unregister
from tritonflow.ops.shapes import broadcast_shapes

FLOATS = ("float32", "float64")


# ---------------------------------------------------------------- the two entries

def _infer_hypot(types, attrs):
    a, b = types
    if a.dtype is not b.dtype or a.dtype.name not in FLOATS:
        raise DTypeError(f"hypot2: needs two float32 or float64 operands, got {a.dtype.name}, {b.dtype.name}")
    return TensorType(broadcast_shapes("hypot2", a.shape, b.shape), a.dtype)


def _hypot_triton(s) -> str:
    # A dtype special case: tl.sqrt_rn is float32-only.
    root = "tl.sqrt" if s.out_dtype.name == "float64" else "tl.sqrt_rn"
    return root + "({0} * {0} + {1} * {1})"


def _hypot_vjp(g, out, a, b):
    return (g * a / out, g * b / out)


def _infer_lse(types, attrs):
    (x,) = types
    if x.dtype.name not in FLOATS:
        raise DTypeError(f"reduce_logsumexp: needs float32 or float64, got {x.dtype.name}")
    dims, keep = attrs["dims"], attrs["keepdim"]
    shape = tuple(1 if i in dims else d for i, d in enumerate(x.shape)) if keep else \
        tuple(d for i, d in enumerate(x.shape) if i not in dims)
    return TensorType(shape, x.dtype)


def _np_lse(x, dims, keepdim):
    m = np.max(x, axis=tuple(dims), keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=tuple(dims), keepdims=True)) + m
    return out if keepdim else np.squeeze(out, axis=tuple(dims))


def _lse_vjp(g, out, x, dims, keepdim):
    keep = tuple(1 if i in dims else d for i, d in enumerate(x.shape))
    if not keepdim:
        g, out = tf.reshape(g, keep), tf.reshape(out, keep)
    return (tf.expand(g, x.shape) * tf.exp(x - tf.expand(out, x.shape)),)


# log(e^a + e^b) without overflow; -inf combines to the other operand, NaN propagates.
LOGADDEXP = "tl.where(a == b, a + 0.6931471805599453, tl.maximum(a, b) + libdevice.log1p(tl.exp(-tl.abs(a - b))))"


@pytest.fixture
def new_ops():
    hypot = register(OpDef("hypot2", Kind.ELEMENTWISE, _infer_hypot, lambda a, b: np.sqrt(a * a + b * b),
                           _hypot_vjp, triton=_hypot_triton, dtypes=FLOATS))
    lse = register(OpDef("reduce_logsumexp", Kind.REDUCTION, _infer_lse, _np_lse, _lse_vjp, dtypes=FLOATS,
                         reduction=ReductionLowering(LOGADDEXP, identity=lambda dtype: -np.inf)))
    try:
        yield hypot, lse
    finally:
        unregister("hypot2")
        unregister("reduce_logsumexp")
    assert "hypot2" not in OPS and "reduce_logsumexp" not in OPS


# ---------------------------------------------------------------- the float64 reference (independent)

def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """logsumexp over dim 1 of hypot(a, b) / 2, in float64 (NumPy's own hypot and logaddexp)."""
    h = np.hypot(a.astype(np.float64), b.astype(np.float64)) / 2
    return np.logaddexp.reduce(h, axis=1)


def finite_difference(a: np.ndarray, b: np.ndarray, g: np.ndarray, step: float = 1e-6) -> tuple:
    """d(sum(g * reference(a, b))) / da and / db by central differences."""
    grads = []
    for which in (0, 1):
        x = [a.astype(np.float64), b.astype(np.float64)]
        grad = np.zeros_like(x[which])
        for i in np.ndindex(grad.shape):
            x[which][i] += step
            up = np.sum(g * reference(*x))
            x[which][i] -= 2 * step
            down = np.sum(g * reference(*x))
            x[which][i] += step
            grad[i] = (up - down) / (2 * step)
        grads.append(grad)
    return tuple(grads)


def model(ops):
    hypot, lse = ops

    def f(a, b):
        return apply(lse, [apply(hypot, [a, b], {}) * 0.5], {"dims": (1,), "keepdim": False})
    return f


def _inputs(rows: int, cols: int, dtype: str, seed: int):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, (rows, cols)) * rng.choice([-1, 1], (rows, cols))
    b = rng.uniform(0.5, 2.0, (1, cols))  # broadcast along rows
    return a.astype(dtype), b.astype(dtype)


def _kernels(jitted) -> list:
    (entry,) = jitted.entries.values()
    return entry.runner.kernels


@pytest.mark.parametrize("dtype", FLOATS)
def test_new_ops_jitted_fused_with_gradients(new_ops, backend, dtype):
    a, b = _inputs(4, 7, dtype, seed=0)
    g = np.random.default_rng(1).standard_normal(4).astype(dtype)
    ta, tb = tf.tensor(a, requires_grad=True), tf.tensor(b, requires_grad=True)
    jitted = tf.jit(model(new_ops), backend=backend)
    out = jitted(ta, tb)
    out.backward(tf.tensor(g))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out.detach().numpy(), reference(a, b), rtol=rtol, atol=rtol)
    want_a, want_b = finite_difference(a, b, g.astype(np.float64))
    fd_tol = 2e-4 if dtype == "float32" else 1e-7  # the finite differences' own error bounds float64
    np.testing.assert_allclose(ta.grad.numpy(), want_a, rtol=fd_tol, atol=fd_tol)
    np.testing.assert_allclose(tb.grad.numpy(), want_b, rtol=fd_tol, atol=fd_tol)
    (entry,) = jitted.entries.values()
    assert {"hypot2", "reduce_logsumexp"} <= {n.op for n in entry.graph.nodes}
    if backend == "triton":
        kernels = _kernels(jitted)
        assert len(kernels) == 1 and kernels[0].kind == "reduction", [k.name for k in kernels]
        source = kernels[0].source
        assert "def reduce_logsumexp_combine(a, b):" in source  # the entry's combine, in the kernel module
        assert "tl.reduce(" in source and "for roffset" not in source  # persistent: the row in one block
        # The backward: da pointwise, and db a column sum (b was broadcast along rows).
        backward = entry.backward_runner.kernels
        assert sorted(k.kind for k in backward) == ["pointwise", "reduction"], [k.name for k in backward]


def test_new_reduction_looped_rows_and_special_values(new_ops, backend):
    """Rows longer than a block: the combine runs in the loop and across lanes; -inf and +inf rows
    keep logsumexp's meaning (the identity and the combine's special cases)."""
    a, b = _inputs(3, 9000, "float32", seed=2)
    a[1] = np.inf  # hypot(inf, b) = inf: the row's logsumexp is inf
    jitted = tf.jit(model(new_ops), backend=backend)
    got = jitted(tf.tensor(a), tf.tensor(b)).numpy()
    want = reference(a, b)
    np.testing.assert_allclose(got, want, rtol=3e-5)
    assert got[1] == np.inf
    if backend == "triton":
        kernels = _kernels(jitted)
        assert len(kernels) == 1 and "for roffset in range" in kernels[0].source
        assert "def reduce_logsumexp_combine(a, b):" in kernels[0].source


def test_new_ops_reject_bad_dtypes_by_their_own_rules(new_ops):
    x = tf.tensor(np.ones((2, 3), np.int32))
    with pytest.raises(DTypeError, match="hypot2"):
        tf.jit(lambda x: apply(new_ops[0], [x, x], {}))(x)
    with pytest.raises(DTypeError, match="reduce_logsumexp"):
        apply(new_ops[1], [x], {"dims": (1,), "keepdim": False})
