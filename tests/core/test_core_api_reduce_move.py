"""Reductions, movement, indexing and matmul, eager and jitted, against torch / NumPy on CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonflow as tf

from core_torch import check, rand
from helpers import assert_close

# ---------------------------------------------------------------- reductions

DIMS = [None, 0, -1, (0, 2), (1,)]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS, ids=repr)
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "logsumexp", "var", "std", "all", "any"])
def test_reductions(name, dim, keepdim):
    x = rand((3, 4, 5), "bool" if name in ("all", "any") else "float32", seed=20)
    tdim = dim if dim is not None else tuple(range(3))
    if name in ("all", "any") and isinstance(tdim, tuple):
        tdim = tdim[0] if len(tdim) == 1 else tdim
    kwargs = {} if dim is None and name not in ("logsumexp",) else {"dim": tdim}
    check(lambda t: getattr(tf, name)(t, dim, keepdim), lambda t: getattr(torch, name)(t, keepdim=keepdim, **kwargs)
          if kwargs else getattr(torch, name)(t, **({"dim": tuple(range(3)), "keepdim": True} if keepdim else {})),
          x, rtol_scale=60)
    # NumPy's spellings are accepted too.
    check(lambda t: getattr(t, name)(axis=dim, keepdims=keepdim),
          lambda t: getattr(torch, name)(t, keepdim=keepdim, **kwargs) if kwargs else
          getattr(torch, name)(t, **({"dim": tuple(range(3)), "keepdim": True} if keepdim else {})), x, rtol_scale=60)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int32", "bool"])
def test_sum_prod_dtypes(dtype):
    x = rand((4, 6), dtype, 1, 2, seed=21)
    check(tf.sum, torch.sum, x, rtol_scale=24)
    check(lambda t: t.sum(1), lambda t: t.sum(1), x, rtol_scale=6)
    check(lambda t: tf.prod(t, 0), lambda t: torch.prod(t, 0), x, rtol_scale=4)
    check(lambda t: tf.sum(t, dtype=tf.float64), lambda t: torch.sum(t, dtype=torch.float64), x)


def test_prod_over_several_dims_and_mean_dtype():
    x = rand((2, 3, 4), "float64", 0.5, 1.5, seed=22)
    got = tf.prod(tf.from_numpy(x), (0, 2), keepdim=True).numpy()
    assert_close(got, np.prod(x, axis=(0, 2), keepdims=True), "float64", rtol_scale=8)
    check(lambda t: tf.mean(t, dtype=tf.float32), lambda t: torch.mean(t, dtype=torch.float32),
          rand((4,), "int32", seed=23))


@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_std_correction(correction):
    x = rand((4, 5), "float32", seed=24)
    check(lambda t: tf.var(t, 1, correction=correction), lambda t: torch.var(t, 1, correction=correction), x,
          rtol_scale=5)
    check(lambda t: t.std(0, keepdim=True, correction=correction),
          lambda t: t.std(0, keepdim=True, correction=correction), x, rtol_scale=5)
    check(lambda t: tf.var(t, unbiased=False), lambda t: torch.var(t, unbiased=False), x, rtol_scale=20)


def test_max_min_arg_forms():
    x = rand((3, 5), "float32", seed=25)
    check(tf.max, torch.max, x)
    check(lambda t: tf.max(t, 1), lambda t: tuple(torch.max(t, 1)), x)
    check(lambda t: tf.min(t, 0, keepdim=True), lambda t: tuple(torch.min(t, 0, keepdim=True)), x)
    out = tf.max(tf.from_numpy(x), dim=1)
    np.testing.assert_array_equal(out.indices.numpy(), np.argmax(x, 1))
    np.testing.assert_array_equal(out.values.numpy(), np.max(x, 1))
    check(lambda t: tf.max(t, t * 0.5), lambda t: torch.max(t, t * 0.5), x)
    for name in ("argmax", "argmin"):
        check(getattr(tf, name), getattr(torch, name), x)
        check(lambda t: getattr(t, name)(1, keepdim=True), lambda t: getattr(t, name)(1, keepdim=True), x)
        check(lambda t: getattr(tf, name)(t, dim=0), lambda t: getattr(torch, name)(t, dim=0), x)


def test_argmax_nan_and_ties():
    x = np.array([[1.0, 3.0, 3.0, np.nan, 2.0], [5.0, 5.0, 1.0, 0.0, 5.0]], np.float32)
    check(lambda t: tf.argmax(t, 1), lambda t: torch.argmax(t, 1), x)
    check(lambda t: tf.argmin(t, 1), lambda t: torch.argmin(t, 1), x)
    check(lambda t: tf.amax(t, 1), lambda t: torch.amax(t, 1), x)


def test_cumsum_and_logsumexp_edges():
    check(lambda t: tf.cumsum(t, 1), lambda t: torch.cumsum(t, 1), rand((3, 6), "float32", seed=26), rtol_scale=6)
    check(lambda t: t.cumsum(0), lambda t: t.cumsum(0), rand((5,), "int32", seed=27))
    check(lambda t: tf.cumsum(t, -1, dtype=tf.float64), lambda t: torch.cumsum(t, -1, dtype=torch.float64),
          rand((2, 3), "float16", seed=28))
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf], [1000.0, 1000.0]], np.float32)
    check(lambda t: tf.logsumexp(t, 1), lambda t: torch.logsumexp(t, 1), x)


def test_reductions_of_empty_tensors():
    x = np.zeros((0, 3), np.float32)
    check(lambda t: tf.sum(t, 0), lambda t: torch.sum(t, 0), x)
    check(lambda t: tf.prod(t, 0), lambda t: torch.prod(t, 0), x)
    check(lambda t: tf.all(t), lambda t: torch.all(t), x.astype(bool))
    check(lambda t: tf.any(t, 0), lambda t: torch.any(t, 0), x.astype(bool))
    check(lambda t: tf.mean(t, 1), lambda t: torch.mean(t, 1), x)


# ---------------------------------------------------------------- movement

def test_shape_functions():
    x = rand((2, 3, 4), "float32", seed=30)
    check(lambda t: t.reshape(4, -1), lambda t: t.reshape(4, -1), x)
    check(lambda t: tf.reshape(t, (24,)), lambda t: torch.reshape(t, (24,)), x)
    check(lambda t: t.view(2, 12), lambda t: t.view(2, 12), x)
    check(lambda t: t.permute(2, 0, 1), lambda t: t.permute(2, 0, 1), x)
    check(lambda t: tf.permute(t, (1, 2, 0)), lambda t: torch.permute(t, (1, 2, 0)), x)
    check(lambda t: t.transpose(0, 2), lambda t: t.transpose(0, 2), x)
    check(lambda t: tf.transpose(t, -1, -2), lambda t: torch.transpose(t, -1, -2), x)
    check(lambda t: t.T.reshape(-1), lambda t: t.permute(2, 1, 0).reshape(-1), x)
    check(lambda t: t.flatten(), lambda t: t.flatten(), x)
    check(lambda t: tf.flatten(t, 1), lambda t: torch.flatten(t, 1), x)
    check(lambda t: t.flatten(0, 1), lambda t: t.flatten(0, 1), x)
    y = rand((3, 1, 4, 1), "float32", seed=31)
    check(lambda t: t.squeeze(), lambda t: t.squeeze(), y)
    check(lambda t: tf.squeeze(t, 1), lambda t: torch.squeeze(t, 1), y)
    check(lambda t: t.squeeze(0), lambda t: t.squeeze(0), y)
    check(lambda t: t.unsqueeze(0), lambda t: t.unsqueeze(0), y)
    check(lambda t: tf.unsqueeze(t, -1), lambda t: torch.unsqueeze(t, -1), y)
    check(lambda t: t.expand(2, 3, 5, 4, 6), lambda t: t.expand(2, 3, 5, 4, 6), y)
    check(lambda t: t.expand(-1, 2, -1, 3), lambda t: t.expand(-1, 2, -1, 3), y)
    check(lambda t: tf.broadcast_to(t, (3, 3, 4, 2)), lambda t: torch.broadcast_to(t, (3, 3, 4, 2)), y)
    check(lambda t: t.contiguous() + 0, lambda t: t.contiguous() + 0, y)


def _numpy_getitem(key):
    def run(x):
        return x[key]
    return run


KEYS = [
    1, -1, slice(None, None, 2), slice(-3, None), slice(None, None, -1), slice(4, 0, -2), (0, 1),
    (slice(1, 3), None, -2), (Ellipsis, 1), (None, Ellipsis, slice(None, None, -2)), (1, Ellipsis, None),
    (slice(10, 20),), (slice(-100, 100, 3), 2), (slice(None), slice(None), slice(3, 1)),
]


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_getitem_basic(key):
    x = rand((5, 4, 6), "float32", seed=32)
    want = x[key]
    for label, got in (("eager", tf.from_numpy(x)[key]), ("jit", tf.jit(lambda t: t[key])(tf.from_numpy(x)))):
        assert tuple(got.shape) == want.shape, (label, key)
        np.testing.assert_array_equal(got.numpy(), want, err_msg=f"{label} {key!r}")


def test_getitem_bool_mask_and_int_tensor():
    x = rand((4, 5), "float32", seed=33)
    mask = x > 0
    np.testing.assert_array_equal(tf.from_numpy(x)[tf.from_numpy(mask)].numpy(), x[mask])
    row_mask = np.array([True, False, True, True])
    np.testing.assert_array_equal(tf.from_numpy(x)[tf.from_numpy(row_mask)].numpy(), x[row_mask])
    np.testing.assert_array_equal(tf.from_numpy(x)[row_mask].numpy(), x[row_mask])
    idx = np.array([3, 0, -1])
    check(lambda t: t[tf.tensor(idx)], lambda t: t[torch.tensor(idx)], x)
    check(lambda t: t[:, tf.tensor(idx)], lambda t: t[:, torch.tensor(idx)], x)
    check(lambda t: t[tf.tensor(2), 1:], lambda t: t[torch.tensor(2), 1:], x)
    # Python lists of ints or bools index like the tensors made from them (PyTorch and NumPy agree).
    check(lambda t: t[[3, 0, -1]], lambda t: t[[3, 0, -1]], x)
    check(lambda t: t[:, [4, 1]], lambda t: t[:, [4, 1]], x)
    check(lambda t: t[[1], 2:], lambda t: t[[1], 2:], x)
    np.testing.assert_array_equal(tf.from_numpy(x)[[True, False, True, True]].numpy(), x[row_mask])


def test_setitem():
    x = rand((4, 5), "float32", seed=34)

    def tf_fn(t):
        t = t.clone()
        t[1:3, ::2] = 7.0
        t[0] = tf.arange(5, dtype=tf.float32)
        t[t < -1] = 0.0
        return t

    def torch_fn(t):
        t = t.clone()
        t[1:3, ::2] = 7.0
        t[0] = torch.arange(5, dtype=t.dtype)
        t[t < -1] = 0.0
        return t
    check(tf_fn, torch_fn, x)


def test_joining_and_splitting():
    a, b = rand((2, 3), "float32", seed=35), rand((4, 3), "float32", seed=36)
    check(lambda a, b: tf.cat([a, b]), lambda a, b: torch.cat([a, b]), a, b)
    check(lambda a, b: tf.cat([a.T, b.T], dim=1), lambda a, b: torch.cat([a.T, b.T], dim=1), a, b)
    check(lambda a, b: tf.concatenate((a, b), axis=0), lambda a, b: torch.cat((a, b), dim=0), a, b)
    check(lambda a, b: tf.cat([a, b.half()], 0), lambda a, b: torch.cat([a, b.half()], 0), a, b)
    check(lambda a: tf.stack([a, a * 2, a]), lambda a: torch.stack([a, a * 2, a]), a)
    check(lambda a: tf.stack([a, a], dim=-1), lambda a: torch.stack([a, a], dim=-1), a)
    x = rand((7, 4), "float32", seed=37)
    check(lambda t: tf.split(t, 3), lambda t: torch.split(t, 3), x)
    check(lambda t: t.split([2, 5]), lambda t: t.split([2, 5]), x)
    check(lambda t: tf.split(t, 2, dim=1), lambda t: torch.split(t, 2, dim=1), x)
    check(lambda t: tf.chunk(t, 3), lambda t: torch.chunk(t, 3), x)
    check(lambda t: t.chunk(2, -1), lambda t: t.chunk(2, -1), x)


def test_pad():
    x = rand((2, 3, 4), "float32", seed=38)
    for pads in [(1, 2), (0, 1, 2, 0), (1, 1, 0, 0, 2, 1), (-1, 2), (2, -1, 1, 0)]:
        check(lambda t: tf.nn.functional.pad(t, pads), lambda t: torch.nn.functional.pad(t, pads), x)
    check(lambda t: tf.pad(t, (1, 1), value=-5.0), lambda t: torch.nn.functional.pad(t, (1, 1), value=-5.0), x)


def test_gather_family():
    x = rand((4, 5), "float32", seed=39)
    idx = np.random.default_rng(40).integers(0, 5, size=(3, 2))
    check(lambda t: tf.gather(t, 1, tf.tensor(idx)), lambda t: torch.gather(t, 1, torch.tensor(idx)), x)
    idx0 = np.random.default_rng(41).integers(0, 4, size=(2, 5))
    check(lambda t: t.gather(0, tf.tensor(idx0)), lambda t: t.gather(0, torch.tensor(idx0)), x)
    idx4 = np.random.default_rng(40).integers(-5, 5, size=(4, 2)) % 5
    check(lambda t: tf.take_along_dim(t, tf.tensor(idx4), 1), lambda t: torch.take_along_dim(t, torch.tensor(idx4), 1), x)
    col = np.array([[1], [0], [4], [2]])
    check(lambda t: tf.take_along_dim(t, tf.tensor(col), dim=1),
          lambda t: torch.take_along_dim(t, torch.tensor(col), dim=1), x)
    sel = np.array([4, 0, 0, 2])
    check(lambda t: tf.index_select(t, 1, tf.tensor(sel)), lambda t: torch.index_select(t, 1, torch.tensor(sel)), x)
    check(lambda t: t.index_select(0, tf.tensor([3, 1])), lambda t: t.index_select(0, torch.tensor([3, 1])), x)


@pytest.mark.parametrize("diagonal", [-1, 0, 2])
def test_tril_triu(diagonal):
    x = rand((2, 4, 5), "float32", seed=42)
    check(lambda t: tf.tril(t, diagonal), lambda t: torch.tril(t, diagonal), x)
    check(lambda t: t.triu(diagonal), lambda t: t.triu(diagonal), x)
    check(lambda t: t.tril(), lambda t: t.tril(), rand((3, 3), "int32", seed=43))


# ---------------------------------------------------------------- matmul

MATMUL_SHAPES = [((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,)), ((3, 4), (4, 5)), ((2, 3, 4), (4, 5)),
                 ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_numpy_rules(shapes):
    a, b = rand(shapes[0], "float32", seed=44), rand(shapes[1], "float32", seed=45)
    check(lambda a, b: a @ b, lambda a, b: a @ b, a, b, rtol_scale=4)
    check(tf.matmul, torch.matmul, a, b, rtol_scale=4)


def test_matmul_variants_and_dtypes():
    a, b = rand((3, 4), "float16", seed=46), rand((4, 2), "float16", seed=47)
    check(tf.mm, torch.mm, a, b, rtol_scale=4)
    # tritonflow promotes mixed operands (torch.matmul refuses them): float16 @ float32 -> float32
    check(tf.matmul, lambda a, b: a @ b.to(a.dtype), a.astype(np.float32), b, rtol_scale=4)
    check(tf.bmm, torch.bmm, rand((2, 3, 4), "float32"), rand((2, 4, 5), "float32"), rtol_scale=4)
    check(tf.dot, torch.dot, rand((5,), "float64"), rand((5,), "float64"), rtol_scale=5)
    check(tf.matmul, torch.matmul, rand((3, 4), "int64", seed=48), rand((4, 2), "int64", seed=49))
    check(tf.matmul, torch.matmul, rand((3, 4), "bfloat16", seed=50), rand((4, 2), "bfloat16", seed=51),
          rtol_scale=4)
