"""tritonflow.autocast: the op policy, regions (nested, disabled, decorator, threads), values and
gradients against torch's own CPU autocast where the two lists agree, and the compiled form
(guarded on the region, casts fused: the same kernel count as float32 on the triton backend).

The expected dtypes are PyTorch's CUDA "Autocast Op Reference" (torch.amp docs): matmul, linear,
conv and scaled_dot_product_attention lower; sum, prod, cumsum, softmax, log_softmax, exp, log,
pow, rsqrt, reciprocal, layer_norm and the losses run in float32; everything else keeps its
input dtype and the usual promotion.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import tritonflow as tf

F = tf.nn.functional
BF16, F16, F32, F64 = tf.bfloat16, tf.float16, tf.float32, tf.float64


def _t(*shape, seed=0, dtype=np.float32, requires_grad=False):
    a = np.random.default_rng(seed).uniform(-1, 1, shape).astype(dtype)
    return tf.tensor(a, requires_grad=requires_grad)


X, W, B = _t(4, 8, seed=1), _t(6, 8, seed=2), _t(6, seed=3)
IMG, KER = _t(1, 2, 5, 5, seed=4), _t(3, 2, 3, 3, seed=5)
TARGET = tf.tensor([0, 1, 2, 3])

# (name, f() run inside the region, the dtype torch's CUDA policy gives)
POLICY = [
    ("matmul", lambda: X @ W.T, "low"),
    ("mm", lambda: tf.mm(X, W.T), "low"),
    ("bmm", lambda: tf.bmm(X.unsqueeze(0), W.T.unsqueeze(0)), "low"),
    ("linear", lambda: F.linear(X, W, B), "low"),
    ("conv2d", lambda: tf.nn.Conv2d(2, 3, 3)(IMG), "low"),
    ("sdpa", lambda: F.scaled_dot_product_attention(X.unsqueeze(0), X.unsqueeze(0), X.unsqueeze(0)), "low"),
    ("sum", lambda: X.sum(), "float32"),
    ("prod", lambda: tf.prod(X, 1), "float32"),
    ("cumsum", lambda: tf.cumsum(X, 1), "float32"),
    ("softmax", lambda: F.softmax(X, -1), "float32"),
    ("log_softmax", lambda: F.log_softmax(X, -1), "float32"),
    ("exp", lambda: tf.exp(X), "float32"),
    ("log", lambda: tf.log(X.abs() + 1), "float32"),
    ("pow", lambda: X ** 3, "float32"),
    ("rsqrt", lambda: tf.rsqrt(X.abs() + 1), "float32"),
    ("layer_norm", lambda: F.layer_norm(X, (8,)), "float32"),
    ("cross_entropy", lambda: F.cross_entropy(X, TARGET), "float32"),
    ("mse_loss", lambda: F.mse_loss(X, X * 0.5), "float32"),
    ("mean", lambda: X.mean(), "same"),
    ("gelu", lambda: F.gelu(X), "same"),
    ("relu", lambda: F.relu(X), "same"),
    ("logsumexp", lambda: tf.logsumexp(X, 1), "same"),
]


def _close_at_scale(got, want, frac: float) -> None:
    """|got - want| <= frac * max|want| everywhere: gradients through bfloat16 products carry
    rounding at the scale of their largest terms, so small entries have no relative accuracy."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err, scale = np.abs(got - want).max(), np.abs(want).max()
    assert err <= frac * scale, f"max error {err:.3g} > {frac} x max |want| {scale:.3g}"


def _expected(kind: str, low, given):
    return {"low": low, "float32": F32, "same": given}[kind]


@pytest.mark.parametrize("name,fn,kind", POLICY, ids=[p[0] for p in POLICY])
@pytest.mark.parametrize("low", [BF16, F16], ids=["bf16", "f16"])
def test_op_policy_dtypes(name, fn, kind, low):
    with tf.autocast("cpu", dtype=low):
        out = fn()
        assert out.dtype is _expected(kind, low, F32), (name, out.dtype)
    assert fn().dtype is F32  # outside the region nothing changes


def test_float32_ops_upcast_half_inputs_and_unlisted_ops_keep_them():
    x = X.to(BF16)
    with tf.autocast("cpu"):
        assert F.softmax(x, -1).dtype is F32 and x.sum().dtype is F32
        assert x.mean().dtype is BF16 and F.gelu(x).dtype is BF16
        assert (x @ W.T + B).dtype is F32   # a float32 operand promotes the bf16 product


def test_default_dtypes_and_which_tensors_are_cast():
    assert tf.autocast("cpu").dtype is BF16 and tf.autocast("cuda").dtype is F16   # torch's defaults
    with tf.autocast("cpu"):
        assert (X.to(F64) @ W.to(F64).T).dtype is F64          # float64 is never cast
        ints = tf.tensor([[1, 2], [3, 4]])
        assert (ints @ ints).dtype is tf.int64                 # nor are integers
    with tf.autocast("cuda"):
        assert (X @ W.T).dtype is F32                          # a cuda region leaves cpu tensors alone
    assert tf.is_autocast_enabled("cpu") is False


def test_nested_and_disabled_regions_restore_on_exit():
    with tf.autocast("cpu", dtype=BF16):
        assert (X @ W.T).dtype is BF16
        with tf.autocast("cpu", dtype=F16):
            assert (X @ W.T).dtype is F16 and tf.get_autocast_dtype("cpu") is F16
            with tf.autocast("cpu", enabled=False):
                assert (X @ W.T).dtype is F32 and not tf.is_autocast_enabled("cpu")
            assert (X @ W.T).dtype is F16
        assert (X @ W.T).dtype is BF16
        with pytest.raises(ZeroDivisionError):
            with tf.autocast("cpu", enabled=False):
                1 / 0
        assert (X @ W.T).dtype is BF16 and tf.is_autocast_enabled("cpu")
    assert (X @ W.T).dtype is F32


def test_decorator_form():
    @tf.autocast("cpu", dtype=F16)
    def f(a, b):
        return a @ b.T, tf.is_autocast_enabled("cpu")

    out, on = f(X, W)
    assert out.dtype is F16 and on
    assert not tf.is_autocast_enabled("cpu")


def test_regions_are_per_thread():
    seen = []
    ready, done = threading.Event(), threading.Event()

    def other():
        ready.wait()
        seen.append((X @ W.T).dtype)
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with tf.autocast("cpu"):
        ready.set()
        done.wait()
        assert (X @ W.T).dtype is BF16
    t.join()
    assert seen == [F32]


def test_bad_arguments_are_clear_errors():
    with pytest.raises(tf.DTypeError, match="autocast: dtype must be float16 or bfloat16, got float32"):
        tf.autocast("cpu", dtype=F32)
    with pytest.raises(tf.DeviceError, match="autocast: device_type must be 'cpu' or 'cuda'"):
        tf.autocast("tpu")


def _mlp(x, w1, b1, w2, b2, target):
    h = F.relu(F.linear(x, w1, b1))
    return F.cross_entropy(F.linear(h, w2, b2), target)


def _mlp_params(seed: int):
    r = np.random.default_rng(seed)
    shapes = [(16, 12), (16,), (5, 16), (5,)]
    return [r.uniform(-0.5, 0.5, s).astype(np.float32) for s in shapes]


def test_values_and_gradients_match_torch_cpu_autocast():
    """Linear, relu and cross_entropy are on torch's CPU lists as on its CUDA ones: torch's CPU
    autocast is an independent reference for values and float32 weight gradients."""
    x = np.random.default_rng(7).uniform(-1, 1, (9, 12)).astype(np.float32)
    target = np.random.default_rng(8).integers(0, 5, 9)
    params = _mlp_params(9)
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = _mlp_torch(torch.tensor(x), *tp, torch.tensor(target))
    want.backward()
    ours = [tf.tensor(p, requires_grad=True) for p in params]
    with tf.autocast("cpu", dtype=BF16):
        got = _mlp(tf.tensor(x), *ours, tf.tensor(target))
    assert got.dtype is F32 and want.dtype == torch.float32
    got.backward()
    # both round each matmul's inputs and output to bfloat16; the products agree to a few roundings
    assert abs(float(got.item()) - want.item()) <= 2e-2 * abs(want.item())
    for p, q in zip(ours, tp):
        assert p.grad.dtype is F32
        _close_at_scale(p.grad.numpy(), q.grad.numpy(), 2e-2)   # a few bf16 roundings (2^-8 each)


def _mlp_torch(x, w1, b1, w2, b2, target):
    h = torch.relu(torch.nn.functional.linear(x, w1, b1))
    return torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, w2, b2), target)


def _reference_mlp(x, params, target, low):
    """float64 NumPy with autocast's roundings: matmul operands and results in `low`."""
    def r(a):
        return a.astype(low).astype(np.float64)
    w1, b1, w2, b2 = (p.astype(np.float64) for p in params)
    h = np.maximum(r(r(r(x) @ r(w1).T) + r(b1)), 0)
    logits = r(r(r(h) @ r(w2).T) + r(b2))
    logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1, keepdims=True)
    return -logp[np.arange(len(target)), target].mean()


def test_jit_guards_on_the_region_and_matches_the_rounded_reference(backend):
    x = np.random.default_rng(1).uniform(-1, 1, (9, 12)).astype(np.float32)
    target = np.random.default_rng(2).integers(0, 5, 9)
    params = _mlp_params(3)
    f = tf.jit(_mlp, backend=backend)
    args = [tf.tensor(x)] + [tf.tensor(p) for p in params] + [tf.tensor(target)]
    plain = f(*args)
    with tf.autocast("cpu", dtype=BF16):
        low = f(*args)
    assert f.cache_info().misses == 2
    assert "autocast regions changed from none to [('cpu', 'bfloat16')]" in f.recompile_reasons[-1]
    with tf.autocast("cpu", dtype=BF16):
        graph = tf.explain(f, *args).graph
    assert "bf16[9,16] = matmul" in graph and "bf16[9,5] = matmul" in graph
    import ml_dtypes
    want = _reference_mlp(x.astype(np.float64), params, target, ml_dtypes.bfloat16)
    assert abs(float(low.item()) - want) <= 1e-2 * abs(want)
    assert abs(float(plain.item()) - float(low.item())) > 0   # the region did change the arithmetic


def test_region_inside_a_jitted_function_with_compiled_backward(backend):
    x = np.random.default_rng(4).uniform(-1, 1, (9, 12)).astype(np.float32)
    target = np.random.default_rng(5).integers(0, 5, 9)
    params = _mlp_params(6)

    @tf.autocast("cpu", dtype=BF16)
    def loss(x, w1, b1, w2, b2, target):
        return _mlp(x, w1, b1, w2, b2, target)

    eager = [tf.tensor(p, requires_grad=True) for p in params]
    loss(tf.tensor(x), *eager, tf.tensor(target)).backward()
    compiled = [tf.tensor(p, requires_grad=True) for p in params]
    tf.jit(loss, backend=backend)(tf.tensor(x), *compiled, tf.tensor(target)).backward()
    exact = [tf.tensor(p, requires_grad=True) for p in params]
    _mlp(tf.tensor(x), *exact, tf.tensor(target)).backward()   # float32, no region
    for a, b, c in zip(compiled, eager, exact):
        assert a.grad.dtype is F32
        # each side rounds the bf16 products and their gradients 2-3 times (2^-8 relative each),
        # at different points (fused kernels keep intermediates in float32 registers)
        _close_at_scale(a.grad.numpy(), c.grad.numpy(), 3e-2)
        _close_at_scale(b.grad.numpy(), c.grad.numpy(), 3e-2)
        _close_at_scale(a.grad.numpy(), b.grad.numpy(), 4e-2)


def test_casts_are_fused_triton_kernel_count_as_float32():
    """The casts autocast adds cost no kernels: weight casts are converted as the matmul loads
    them, the others ride in the kernels that produce or consume them."""
    def block(x, w1, b1, w2, b2, g):
        h = F.gelu(F.linear(F.layer_norm(x, (32,), weight=g), w1, b1))
        return x + F.linear(h, w2, b2)

    args = [_t(8, 32, seed=1), _t(64, 32, seed=2), _t(64, seed=3), _t(32, 64, seed=4), _t(32, seed=5),
            _t(32, seed=6)]
    f = tf.jit(block, backend="triton")
    plain = [k.kind for k in tf.explain(f, *args).kernels]
    with tf.autocast("cpu", dtype=BF16):
        kernels = [k.kind for k in tf.explain(f, *args).kernels]
        got = f(*args).numpy()
        want = tf.jit(block, backend="numpy")(*args).numpy()
    assert plain == ["reduction", "matmul", "matmul"]
    assert kernels == plain
    # the fused kernels keep bf16 values in float32 registers between ops the interpreter rounds
    _close_at_scale(got, want, 2e-2)
