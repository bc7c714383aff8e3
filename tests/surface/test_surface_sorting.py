"""sort, argsort, topk, kthvalue, msort against torch on CPU: values, indices (torch's stable order:
ties in input order, NaN above +inf, -0.0 equal to 0.0), gradients, eager and jitted on both backends;
the triton sort kernel's fusion and its refusal of rows longer than it sorts in one block."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonflow as tf
from tritonflow.kernels import heuristics

from helpers import assert_close

SPECIALS = np.array([np.nan, 1.0, -0.0, 0.0, np.nan, -np.inf, np.inf, 1.0, -2.0, 0.0], np.float32)
DTYPES = ["float32", "float16", "bfloat16", "float64", "int32", "int64", "bool"]


def _values(shape, dtype: str, seed: int) -> np.ndarray:
    """Few distinct values (ties), with NaN, infinities and signed zeros among floats."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    x = rng.integers(-3, 4, size=shape).astype(np.float64)
    if dtype.startswith(("float", "bfloat")):
        flat = x.reshape(-1)
        flat[: min(flat.size, SPECIALS.size)] = SPECIALS[: flat.size]
        rng.shuffle(flat)
    return x.astype(tf.dtypes.as_dtype(dtype).np)


def _torch(x: np.ndarray) -> torch.Tensor:
    if x.dtype == tf.bfloat16.np:
        return torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(x)


def _back(t: torch.Tensor) -> np.ndarray:
    return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()


def _run(fn, x: np.ndarray, mode: str):
    if mode == "eager":
        return fn(tf.from_numpy(x))
    return tf.jit(fn, backend=mode)(tf.from_numpy(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["eager", "numpy", "triton"])
def test_sort_matches_torch_stable_order(dtype, mode):
    for shape, dim in [((3, 10), -1), ((10, 3), 0), ((2, 5, 7), 1)]:
        x = _values(shape, dtype, seed=len(shape) + dim)
        for descending in (False, True):
            values, indices = _run(lambda t: tf.sort(t, dim, descending=descending), x, mode)
            want = torch.sort(_torch(x), dim=dim, descending=descending, stable=True)
            label = f"{dtype} {shape} dim={dim} descending={descending} {mode}"
            np.testing.assert_array_equal(indices.numpy(), want.indices.numpy(), err_msg=label)
            assert_close(values.numpy(), _back(want.values), dtype, msg=label)
            order = _run(lambda t: t.argsort(dim, descending), x, mode)
            np.testing.assert_array_equal(order.numpy(), want.indices.numpy(), err_msg=label)


@pytest.mark.parametrize("mode", ["eager", "numpy", "triton"])
def test_topk_kthvalue_msort(mode):
    x = _values((4, 9), "float32", seed=7)
    x = np.where(np.isnan(x), 5.0, x).astype(np.float32)  # torch.kthvalue's NaN order is not torch.sort's
    for k, largest in [(1, True), (3, True), (9, True), (4, False), (0, True)]:
        values, indices = _run(lambda t: tf.topk(t, k, largest=largest), x, mode)
        want = torch.topk(torch.from_numpy(x), k, largest=largest)
        np.testing.assert_array_equal(values.numpy(), want.values.numpy())
        # Among tied values the earliest positions: torch.sort's stable order (torch.topk's own
        # choice among ties is unspecified).
        stable = torch.sort(torch.from_numpy(x), dim=-1, descending=largest, stable=True).indices[:, :k]
        np.testing.assert_array_equal(indices.numpy(), stable.numpy())
    for k in (1, 4, 9):
        values, indices = _run(lambda t: tf.kthvalue(t, k, 1, keepdim=True), x, mode)
        want = torch.kthvalue(torch.from_numpy(x), k, 1, keepdim=True)
        np.testing.assert_array_equal(values.numpy(), want.values.numpy())
        np.testing.assert_array_equal(x[np.arange(4)[:, None], indices.numpy()], want.values.numpy())
    np.testing.assert_array_equal(_run(tf.msort, x, mode).numpy(), torch.msort(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("mode", ["eager", "numpy", "triton"])
def test_sort_and_topk_gradients_match_torch(mode):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6))
    g = rng.standard_normal((3, 6))

    def ours(t):
        values, _ = tf.sort(t * 1.5, -1, descending=True)
        top = tf.topk(t, 2, dim=0).values
        return (values * tf.tensor(g)).sum() + (top * top).sum()

    t = torch.tensor(x, requires_grad=True)
    values = torch.sort(t * 1.5, -1, descending=True).values
    top = torch.topk(t, 2, dim=0).values
    ((values * torch.tensor(g)).sum() + (top * top).sum()).backward()
    xt = tf.tensor(x, requires_grad=True)
    loss = ours(xt) if mode == "eager" else tf.jit(ours, backend=mode)(xt)
    loss.backward()
    np.testing.assert_allclose(xt.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_trivial_sorts_and_errors():
    one = tf.tensor([[2.0], [1.0]])
    values, indices = tf.sort(one, -1)
    np.testing.assert_array_equal(indices.numpy(), [[0], [0]])
    scalar = tf.sort(tf.tensor(3.0))
    assert scalar.values.item() == 3.0 and scalar.indices.item() == 0
    jitted = tf.jit(lambda t: tf.argsort(t, -1), backend="triton")
    np.testing.assert_array_equal(jitted(one).numpy(), [[0], [0]])
    assert jitted.entries and not list(jitted.entries.values())[0].runner.kernels[0].kind == "sort"
    with pytest.raises(tf.ShapeError, match=r"topk: k \(4\) is out of range for dim 1 of size 3"):
        tf.topk(tf.ones((2, 3)), 4)
    with pytest.raises(tf.ShapeError, match="argsort: dim 2 is out of range"):
        tf.argsort(tf.ones((2, 3)), 2)
    with pytest.raises(tf.ShapeError, match="kthvalue: k must be at least 1"):
        tf.kthvalue(tf.ones(3), 0)


def test_triton_sort_is_one_kernel_with_its_producers_fused():
    x = np.random.default_rng(0).standard_normal((5, 33)).astype(np.float32)
    fn = tf.jit(lambda t: tf.argsort(t * 2.0 - 1.0, dim=0, descending=True), backend="triton")
    np.testing.assert_array_equal(fn(tf.from_numpy(x)).numpy(),
                                  torch.sort(torch.from_numpy(x) * 2 - 1, dim=0, descending=True, stable=True).indices)
    (entry,) = fn.entries.values()
    assert [k.kind for k in entry.runner.kernels] == ["sort"]
    assert "th.sort_with_positions" in entry.runner.kernels[0].source


LONG_ROWS = [("float32", (3, 37), 1, False), ("float32", (40, 2, 3), 0, True), ("float32", (2, 65), -1, False),
             ("float64", (2, 65), -1, True), ("int64", (3, 37), 1, True)]


@pytest.mark.parametrize("dtype, shape, dim, descending", LONG_ROWS)
def test_triton_sorts_long_rows_in_chunks_and_merges(monkeypatch, dtype, shape, dim, descending):
    """A row longer than one block: chunks sorted in registers, then merge passes (block sizes made
    small here so that odd lengths, short last runs and several passes stay cheap to run; 64-bit
    keys for float64 and int64)."""
    monkeypatch.setattr(heuristics, "SORT_MAX", 16)
    monkeypatch.setattr(heuristics, "SORT_CHUNK", 8)
    x = _values(shape, dtype, seed=shape[0])
    fn = tf.jit(lambda t: tf.sort(t, dim, descending=descending), backend="triton")
    values, indices = fn(tf.from_numpy(x))
    want = torch.sort(_torch(x), dim=dim, descending=descending, stable=True)
    np.testing.assert_array_equal(indices.numpy(), want.indices.numpy())
    assert_close(values.numpy(), _back(want.values), dtype)
    (entry,) = fn.entries.values()
    kinds = [k.kind for k in entry.runner.kernels if k.kind.startswith("sort")]
    passes = int(np.ceil(np.log2(np.ceil(x.shape[dim] / 8))))
    assert kinds == ["sort"] + ["sort_merge"] * passes, kinds


def test_triton_refuses_dynamic_rows_longer_than_one_block_naming_the_op_and_line(monkeypatch):
    monkeypatch.setattr(heuristics, "SORT_MAX", 16)
    long_rows = tf.jit(lambda t: tf.argsort(t, 0), backend="triton", dynamic=True)
    np.testing.assert_array_equal(long_rows(tf.tensor([[3.0], [1.0], [2.0]])).numpy(), [[1], [2], [0]])
    with pytest.raises(tf.UnsupportedError, match="argsort: the triton backend sorts a row of a dynamic length "
                                                  "in one block of at most 16 elements, and this row has 17") as info:
        long_rows(tf.zeros((17, 1)))
    assert "test_surface_sorting.py" in str(info.value)
