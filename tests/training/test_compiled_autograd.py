"""Compiled backward: jitted forward + loss.backward() equals eager gradients, on every backend.

The reference is the eager tape (itself checked against finite differences and torch elsewhere).
"""
from __future__ import annotations

import numpy as np
import pytest

import tritonflow as tf
from tritonflow import AutogradError, nn
import tritonflow.nn.functional as F
from tritonflow.ops.registry import OPS, Kind
from tests.helpers import assert_close

RNG = np.random.default_rng(7)


def leaf(*shape, dtype="float32"):
    return tf.tensor(RNG.standard_normal(shape), dtype=dtype, requires_grad=True)


def grads_of(fn, args, jitted, backend):
    for a in args:
        if isinstance(a, tf.Tensor):
            a.grad = None
    run = tf.jit(fn, backend=backend) if jitted else fn
    out = run(*args)
    loss = out if out.ndim == 0 else (out * tf.tensor(np.linspace(-1, 1, out.numel()).reshape(out.shape),
                                                      dtype=out.dtype)).sum()
    loss.backward()
    return out.detach().numpy(), [a.grad.numpy() if isinstance(a, tf.Tensor) and a.requires_grad else None
                                  for a in args]


def mlp_ce(x, w1, b1, w2, y):
    return F.cross_entropy(F.linear(F.gelu(F.linear(x, w1, b1)), w2), y, label_smoothing=0.1)


def norm_softmax(x, w, b):
    return F.softmax(F.layer_norm(x, (6,), w, b) * 3.0, -1)


def rms_silu(x, w):
    return F.silu(F.rms_norm(x, (6,), w))


def causal_attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def conv_pool(x, w, b):
    return F.relu(nn.conv.max_pool2d(nn.conv.conv2d(x, w, b, padding=1), 2))


def embed_tanh(idx, table):
    return F.embedding(idx, table).tanh()


CASES = {
    "mlp_ce": (mlp_ce, lambda: [tf.tensor(RNG.standard_normal((5, 4)), dtype="float32"), leaf(8, 4), leaf(8),
                                leaf(3, 8), tf.tensor([0, 2, 1, 1, 0])]),
    "layernorm_softmax": (norm_softmax, lambda: [leaf(3, 6), leaf(6), leaf(6)]),
    "rmsnorm_silu": (rms_silu, lambda: [leaf(2, 3, 6), leaf(6)]),
    "causal_attention": (causal_attention, lambda: [leaf(2, 5, 4), leaf(2, 5, 4), leaf(2, 5, 4)]),
    "conv_pool": (conv_pool, lambda: [leaf(2, 3, 6, 6), leaf(4, 3, 3, 3), leaf(4)]),
    "embedding": (embed_tanh, lambda: [tf.tensor([[1, 0, 3], [3, 3, 2]]), leaf(4, 5)]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_compiled_gradients_equal_eager(case, backend):
    fn, make = CASES[case]
    args = make()
    want_out, want = grads_of(fn, args, False, backend)
    got_out, got = grads_of(fn, args, True, backend)
    assert_close(got_out, want_out, "float32", rtol_scale=10)
    for g, w in zip(got, want):
        if w is not None:
            assert_close(g, w, "float32", rtol_scale=10)


def test_backward_graph_is_separate_and_saves_few_values():
    # On a fusing backend (triton) the elementwise values are recomputed inside the backward's kernels.
    x, w, b = leaf(4, 6), leaf(6), leaf(6)
    jf = tf.jit(lambda x, w, b: F.layer_norm(x, (6,), w, b).sum(), backend="triton")
    jf(x, w, b).backward()
    (entry,) = jf.entries.values()
    assert entry.backward_graph is not None
    saved = [n for n in entry.backward_graph.inputs if n.name.startswith("saved")]
    # layer_norm's backward needs the row statistics, not a copy of every elementwise value.
    assert all(n.type.shape in ((4, 1), ()) for n in saved), [str(n.type) for n in saved]
    assert not any(n.attrs.get("cotangent") is not None for n in entry.graph.inputs)


def test_numpy_backend_backward_recomputes_only_one_pass_arithmetic_and_views():
    # On the numpy backend the backward recomputes only what its row-blocked runs do in one pass
    # over cached rows (x - mean, its product with rstd, views); the statistics and the rsqrt are
    # saved (tests/jit/test_recompute_policy.py).
    x, w, b = leaf(4, 6), leaf(6), leaf(6)
    jf = tf.jit(lambda x, w, b: F.layer_norm(x, (6,), w, b).sum(), backend="numpy")
    jf(x, w, b).backward()
    (entry,) = jf.entries.values()
    backward = entry.backward_graph
    depends = {id(n) for n in backward.inputs if n.attrs.get("cotangent") is not None}
    for node in backward.nodes:
        if node.op != "constant" and any(id(i) in depends for i in node.inputs):
            depends.add(id(node))
    recomputed = [n.op for n in backward.nodes if id(n) not in depends and n.op != "constant"]
    assert all(OPS[op].kind is Kind.MOVEMENT or op in ("sub", "mul", "add", "neg") for op in recomputed), recomputed
    assert "sub" in recomputed and not {"rsqrt", "reduce_sum", "div"} & set(recomputed), recomputed
    assert not any(n.attrs.get("cotangent") is not None for n in entry.graph.inputs)


def test_multiple_outputs_nondifferentiable_output_and_reuse():
    def f(x, w):
        h = x @ w
        return h.tanh(), h.argmax(-1), h.sum()
    x, w = leaf(3, 4), leaf(4, 2)
    jf = tf.jit(f)
    a, idx, s = jf(x, w)
    assert a.requires_grad and not idx.requires_grad and s.requires_grad
    ((a * a).sum() + s * 2.0 + (a * s).sum()).backward()
    gx, gw = x.grad.numpy(), w.grad.numpy()
    x.grad = w.grad = None
    a, idx, s = f(x, w)
    ((a * a).sum() + s * 2.0 + (a * s).sum()).backward()
    assert_close(gx, x.grad, "float32", rtol_scale=10)
    assert_close(gw, w.grad, "float32", rtol_scale=10)


def test_only_some_outputs_used_and_accumulation():
    x = leaf(4)
    jf = tf.jit(lambda x: (x.exp(), x.sin()))
    e, _ = jf(x)
    e.sum().backward()
    _, s = jf(x)
    s.sum().backward()
    assert_close(x.grad, np.exp(x.detach().numpy()) + np.cos(x.detach().numpy()), "float32")
    assert jf.cache_info().misses == 1


def test_nonleaf_argument_and_captured_parameter():
    w = leaf(3, 3)
    scale = leaf(3)
    jf = tf.jit(lambda h: (h @ w * scale).sum())   # w and scale are captured, both require grad
    x = leaf(2, 3)
    h = x * 2.0                                      # a non-leaf argument
    jf(h).backward()
    gx, gw, gs = x.grad.numpy(), w.grad.numpy(), scale.grad.numpy()
    x.grad = w.grad = scale.grad = None
    ((x * 2.0) @ w * scale).sum().backward()
    for got, t in ((gx, x), (gw, w), (gs, scale)):
        assert_close(got, t.grad, "float32")


def test_captured_parameters_get_gradients_when_no_argument_requires_grad(backend):
    # A global model read inside a jitted function, fed data that does not require grad: the
    # parameters are captured inputs and still need the compiled backward.
    tf.manual_seed(3)
    model = nn.Linear(4, 3)
    x_np = RNG.standard_normal((5, 4)).astype(np.float32)
    jf = tf.jit(lambda x: (model(x) ** 2).sum(), backend=backend)
    loss = jf(tf.tensor(x_np))
    assert loss.requires_grad
    loss.backward()
    w = model.weight.detach().numpy().astype(np.float64)
    b = model.bias.detach().numpy().astype(np.float64)
    dy = 2.0 * (x_np.astype(np.float64) @ w.T + b)  # d/dy of sum(y ** 2), y = x @ w.T + b
    assert_close(model.weight.grad, dy.T @ x_np.astype(np.float64), "float32", rtol_scale=4)
    assert_close(model.bias.grad, dy.sum(axis=0), "float32", rtol_scale=4)


def test_second_backward_through_compiled_graph_needs_retain_graph():
    x = leaf(3)
    y = tf.jit(lambda x: (x * x).sum())(x)
    y.backward()
    with pytest.raises(AutogradError, match="second time"):
        y.backward()


def test_no_grad_call_builds_no_backward():
    x = leaf(3)
    jf = tf.jit(lambda x: x * 2)
    with tf.no_grad():
        y = jf(x)
    assert not y.requires_grad
    assert jf(x).requires_grad and jf.cache_info().entries == 2


def test_compiled_module_gradients_and_dropout_match_eager():
    tf.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 16), nn.GELU(), nn.Dropout(0.2), nn.LayerNorm(16), nn.Linear(16, 3))
    compiled = tf.compile(model)
    x = tf.tensor(RNG.standard_normal((6, 5)), dtype="float32")
    y = tf.tensor([0, 1, 2, 2, 1, 0])
    results = []
    for run in (model, compiled):
        model.zero_grad()
        tf.manual_seed(11)  # the same random stream for both dropout masks
        loss = F.cross_entropy(run(x), y)
        loss.backward()
        results.append((float(loss), [p.grad.numpy() for p in model.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        assert_close(b, a, "float32", rtol_scale=10)


def test_jit_of_grad_compiles_forward_and_backward_together():
    def loss(w, x):
        return (F.softmax(x @ w, -1) ** 2).sum()
    w, x = leaf(4, 3).detach(), leaf(5, 4).detach()
    eager = tf.grad(loss)(w, x)
    jg = tf.jit(tf.grad(loss))
    assert_close(jg(w, x), eager, "float32")
    (entry,) = jg.entries.values()
    assert any(n.op == "matmul" and n.inputs[0].op == "permute" for n in entry.graph.nodes)  # dL/dw is in the graph


def test_value_and_grad_argnums_and_aux():
    def f(a, params):
        out = (a * params["w"]).sum() + params["b"].sum() ** 2
        return out, a.shape[0]
    a = tf.tensor(RNG.standard_normal(3))
    params = {"w": tf.tensor(RNG.standard_normal(3)), "b": tf.tensor(RNG.standard_normal(2))}
    (value, aux), (ga, gp) = tf.value_and_grad(f, argnums=(0, 1), has_aux=True)(a, params)
    assert aux == 3 and not value.requires_grad
    assert_close(ga, params["w"].numpy(), "float64")
    assert_close(gp["w"], a.numpy(), "float64")
    assert_close(gp["b"], np.full(2, 2 * params["b"].numpy().sum()), "float64")
    assert a.grad is None and params["w"].grad is None


def test_grad_errors():
    w = tf.ones(3)
    with pytest.raises(AutogradError, match="scalar.*shape \\(3,\\)"):
        tf.grad(lambda w: w * 2)(w)
    with pytest.raises(tf.DTypeError, match="int64"):
        tf.grad(lambda i: i.sum())(tf.tensor([1, 2]))
