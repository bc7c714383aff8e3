"""Integer-tensor indexing, `x[idx] = v`, index_put (accumulate too), scatter, index_add, index_copy,
repeat, tile and repeat_interleave against torch on CPU: values and gradients, eager and jitted on
both backends, and the errors for bad indices."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonflow as tf

RNG = np.random.default_rng(12)
X = RNG.standard_normal((4, 5, 6))
I2 = np.array([[0, 3], [2, -1]])
J = np.array([1, 4])

# (name, key builder given a module with `tensor`): torch's placement of the index dims.
KEYS = [
    ("one_2d", lambda m: (m.tensor(I2),)),
    ("after_slice", lambda m: (slice(None), m.tensor(J))),
    ("split_by_slice", lambda m: (m.tensor(I2), slice(1, 4), m.tensor(J))),
    ("adjacent_pair", lambda m: (m.tensor(I2), m.tensor(J))),
    ("int_then_tensor", lambda m: (1, slice(None), m.tensor(J))),
    ("ellipsis", lambda m: (Ellipsis, m.tensor(J))),
    ("strided_int", lambda m: (slice(None, None, 2), m.tensor(I2), 0)),
    ("list", lambda m: ([3, 0, 3],)),
]


def _run(fn, mode, *arrays):
    tensors = [tf.tensor(a) for a in arrays]
    return (fn(*tensors) if mode == "eager" else tf.jit(fn, backend=mode)(*tensors)).numpy()


def _reference_put(key, value: np.ndarray, accumulate: bool) -> np.ndarray:
    """x after x[key] = value (or +=, duplicates summed), placed through torch's own index layout."""
    positions = torch.arange(X.size).reshape(X.shape)[key(torch)].numpy().reshape(-1)
    out = X.copy().reshape(-1)
    if accumulate:
        np.add.at(out, positions, value.reshape(-1))
    else:
        out[positions] = value.reshape(-1)
    return out.reshape(X.shape)


# Every key eagerly and on the numpy backend; three representative ones on the triton backend
# (Triton's interpreter costs about a millisecond per program).
CASES = [pytest.param(mode, key, id=f"{mode}-{name}") for name, key in KEYS for mode in ("eager", "numpy")] + [
    pytest.param("triton", key, id=f"triton-{name}") for name, key in KEYS
    if name in ("split_by_slice", "int_then_tensor", "list")]


@pytest.mark.parametrize("mode, key", CASES)
def test_read_and_write_with_tensor_indices(mode, key):
    want = torch.from_numpy(X)[key(torch)].numpy()
    np.testing.assert_array_equal(_run(lambda t: t[key(tf)], mode, X), want)
    value = RNG.standard_normal(want.shape)
    for accumulate in (False, True):
        got = _run(lambda t, v: t.index_put(key(tf), v, accumulate=accumulate), mode, X, value)
        np.testing.assert_allclose(got, _reference_put(key, value, accumulate), rtol=1e-12, atol=1e-12)

    def assign(t, v):
        t = t.clone()
        t[key(tf)] = v
        return t
    np.testing.assert_allclose(_run(assign, mode, X, value), _reference_put(key, value, False), rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["eager", "numpy"])
def test_index_put_gradients_match_torch(mode):
    value = RNG.standard_normal((2, 2, 3))
    weight = RNG.standard_normal(X.shape)

    def ours(x, v):
        x = x * 1.0
        x[tf.tensor(I2), 1:4, tf.tensor(J)] = v
        accumulated = x.index_put((tf.tensor([0, 0, 2]),), v[0, 0, 0] * 2, accumulate=True)
        return (accumulated * tf.tensor(weight)).sum()

    xt, vt = torch.tensor(X, requires_grad=True), torch.tensor(value, requires_grad=True)
    x = xt * 1.0
    x[torch.tensor(I2), 1:4, torch.tensor(J)] = vt
    accumulated = x.index_put((torch.tensor([0, 0, 2]),), vt[0, 0, 0] * 2, accumulate=True)
    (accumulated * torch.tensor(weight)).sum().backward()
    xs, vs = tf.tensor(X, requires_grad=True), tf.tensor(value, requires_grad=True)
    loss = ours(xs, vs) if mode == "eager" else tf.jit(ours, backend=mode)(xs, vs)
    loss.backward()
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(vs.grad.numpy(), vt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_masks_among_other_indices_are_eager_positions():
    mask = X[:, 0, 0] > 0
    t = torch.from_numpy(X.copy())
    ours = tf.tensor(X)
    np.testing.assert_array_equal(ours[tf.tensor(mask), 2].numpy(), t[torch.from_numpy(mask), 2].numpy())
    t[torch.from_numpy(mask), 2] = torch.arange(6.0, dtype=torch.float64)
    ours[tf.tensor(mask), 2] = tf.arange(6.0)
    np.testing.assert_array_equal(ours.numpy(), t.numpy())
    with pytest.raises(tf.TraceError, match="boolean-mask indexing has a data-dependent output shape"):
        tf.jit(lambda x, m: x[m, 0])(tf.tensor(X), tf.tensor(mask))


def test_bad_indices_raise_clear_errors():
    x = tf.tensor(X)
    with pytest.raises(tf.TritonflowIndexError, match="index: index 7 is out of range for dim 1 of size 5"):
        x[:, tf.tensor([7])]
    with pytest.raises(tf.TritonflowIndexError, match=r"index_put: shape mismatch: index tensors of shapes "
                                                      r"\(2, 2\), \(3,\) cannot be broadcast together"):
        x.index_put((tf.tensor(I2), tf.tensor([0, 1, 2])), 1.0)
    with pytest.raises(tf.TritonflowIndexError, match="tensors used as indices must be integer or bool tensors"):
        x[tf.tensor([0.0])]
    with pytest.raises(tf.ShapeError, match=r"value of shape \(3,\) cannot be broadcast to the indexed shape \(2, 5, 6\)"):
        x[tf.tensor([1, 3])] = tf.ones(3)
    with pytest.raises(tf.UnsupportedError, match="None .* together with tensor indices"):
        x[None, tf.tensor(J)]


@pytest.mark.parametrize("mode", ["eager", "numpy", "triton"])
def test_scatter_index_add_index_copy_match_torch(mode):
    base = RNG.standard_normal((4, 3))
    src = RNG.standard_normal((3, 3))
    index = np.array([[0, 1, 2], [2, 0, 3], [1, 3, 0]])  # distinct per column: no write races
    rows = np.array([3, 0, 2])

    def ours(b, s):
        return (tf.scatter(b, 0, tf.tensor(index[:2]), s), b.scatter(1, tf.tensor(index[:, :1] % 3), 7.5),
                b.scatter_add(0, tf.tensor(index), s), b.index_add(0, tf.tensor(rows), s, alpha=2.0),
                b.index_copy(0, tf.tensor(rows), s), tf.scatter(b, 0, tf.tensor(index), s, reduce="add"))
    b, s = torch.from_numpy(base), torch.from_numpy(src)
    want = (torch.scatter(b, 0, torch.from_numpy(index[:2]), s), b.scatter(1, torch.from_numpy(index[:, :1] % 3), 7.5),
            b.scatter_add(0, torch.from_numpy(index), s), b.index_add(0, torch.from_numpy(rows), s, alpha=2.0),
            b.index_copy(0, torch.from_numpy(rows), s), torch.scatter_add(b, 0, torch.from_numpy(index), s))
    args = [tf.tensor(base), tf.tensor(src)]
    got = ours(*args) if mode == "eager" else tf.jit(ours, backend=mode)(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-12, atol=1e-12)


def test_scatter_gradients_match_torch():
    base = RNG.standard_normal((4, 3))
    src = RNG.standard_normal((2, 3))
    index = np.array([[0, 1, 2], [3, 0, 1]])
    weight = RNG.standard_normal((4, 3))
    bt, st = torch.tensor(base, requires_grad=True), torch.tensor(src, requires_grad=True)
    (torch.scatter(bt, 0, torch.from_numpy(index), st) * torch.from_numpy(weight)).sum().backward()
    bs, ss = tf.tensor(base, requires_grad=True), tf.tensor(src, requires_grad=True)
    (tf.scatter(bs, 0, tf.tensor(index), ss) * tf.tensor(weight)).sum().backward()
    np.testing.assert_allclose(bs.grad.numpy(), bt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ss.grad.numpy(), st.grad.numpy(), rtol=1e-12)
    with pytest.raises(tf.TritonflowIndexError, match="scatter: index 4 is out of range for dim 0 of size 4"):
        tf.scatter(tf.tensor(base), 0, tf.tensor([[4, 0, 0]]), 1.0)


@pytest.mark.parametrize("mode", ["eager", "numpy", "triton"])
def test_repeat_tile_repeat_interleave_match_torch_with_gradients(mode):
    x = RNG.standard_normal((2, 3))
    counts = np.array([2, 0, 3])
    weight = RNG.standard_normal(40)

    def ours(t):
        parts = [t.repeat(2, 1, 2), tf.tile(t, (2,)), t.repeat_interleave(2, dim=0), tf.repeat_interleave(t, 3),
                 t.repeat_interleave(tf.tensor(counts), dim=1, output_size=5)]
        flat = tf.cat([tf.reshape(p, (-1,)) for p in parts])
        return flat, (flat[:40] * tf.tensor(weight)).sum()

    def theirs(t):
        parts = [t.repeat(2, 1, 2), torch.tile(t, (2,)), t.repeat_interleave(2, dim=0), torch.repeat_interleave(t, 3),
                 t.repeat_interleave(torch.from_numpy(counts), dim=1, output_size=5)]
        flat = torch.cat([p.reshape(-1) for p in parts])
        return flat, (flat[:40] * torch.from_numpy(weight)).sum()
    xt = torch.tensor(x, requires_grad=True)
    want, want_loss = theirs(xt)
    want_loss.backward()
    xs = tf.tensor(x, requires_grad=True)
    got, loss = ours(xs) if mode == "eager" else tf.jit(ours, backend=mode)(xs)
    loss.backward()
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("backend_name", ["numpy", "triton"])
def test_repeat_interleave_with_traced_counts(backend_name):
    """Counts that are a jitted function's argument: positions from a cumulative sum, output_size given."""
    x, counts = np.arange(12.0).reshape(3, 4), np.array([2, 0, 3])
    fn = tf.jit(lambda t, r: t.repeat_interleave(r, dim=0, output_size=5), backend=backend_name)
    np.testing.assert_array_equal(fn(tf.tensor(x), tf.tensor(counts)).numpy(),
                                  torch.from_numpy(x).repeat_interleave(torch.from_numpy(counts), dim=0).numpy())


def test_repeat_interleave_counts_and_errors():
    np.testing.assert_array_equal(tf.repeat_interleave(tf.tensor([1, 0, 2])).numpy(),
                                  torch.repeat_interleave(torch.tensor([1, 0, 2])).numpy())
    with pytest.raises(tf.TraceError, match="under jit pass output_size="):
        tf.jit(lambda x, r: x.repeat_interleave(r, dim=0))(tf.ones(3), tf.tensor([1, 2, 0]))
    with pytest.raises(tf.ShapeError, match="repeat_interleave: repeats must be non-negative"):
        tf.ones(2).repeat_interleave(tf.tensor([1, -1]))
    with pytest.raises(tf.ShapeError, match=r"repeat: 1 repeat counts \(2,\) for a tensor of 2 dims"):
        tf.ones((2, 2)).repeat(2)
