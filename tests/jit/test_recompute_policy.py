"""The compiled backward's recompute decision follows the backend (compiled_autograd.partition with
the backend's `recomputes`): the numpy backend saves transcendentals and comparisons (an erf
recomputed in the backward is a second pass of the costliest op) and recomputes views and one-pass
arithmetic, the triton backend recomputes elementwise ops inside its fused kernels. Gradients are checked against torch in float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow import backends
from tritonflow.compiled_autograd import default_recomputes, recompute_policy
from tritonflow.ops.registry import OPS


def _gelu_block(x, w):
    return F.gelu(x @ w).reshape(-1).sum()


def _entry_graphs(backend: str):
    rng = np.random.default_rng(0)
    x = tf.tensor(rng.standard_normal((6, 5)).astype(np.float32), requires_grad=True)
    w = tf.tensor(rng.standard_normal((5, 4)).astype(np.float32), requires_grad=True)
    fn = tf.jit(_gelu_block, backend=backend)
    fn(x, w).backward()
    tx, tw = (torch.tensor(t.detach().numpy(), dtype=torch.float64, requires_grad=True) for t in (x, w))
    torch.nn.functional.gelu(tx @ tw).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-6)
    (entry,) = fn.entries.values()
    return entry.graph, entry.backward_graph


def _ops(graph) -> list:
    return [n.op for n in graph.nodes]


def test_numpy_backend_recomputes_layer_norm_arithmetic_not_its_statistics():
    # x - mean and its product with rstd are recomputed from x in the backward (one pass each over
    # rows in cache) rather than saved as two whole-size arrays; the row statistics are saved.
    rng = np.random.default_rng(1)
    x = tf.tensor(rng.standard_normal((8, 16)).astype(np.float32), requires_grad=True)
    fn = tf.jit(lambda x: F.layer_norm(x, (16,)), backend="numpy")
    out = fn(x)
    weights = rng.standard_normal((8, 16))
    (out * tf.tensor(weights.astype(np.float32))).sum().backward()
    (entry,) = fn.entries.values()
    saved = entry.graph.outputs[1:]
    assert saved and all(n.type.shape[-1] == 1 for n in saved), [n.type for n in saved]
    tx = torch.tensor(x.detach().numpy(), dtype=torch.float64, requires_grad=True)
    (torch.nn.functional.layer_norm(tx, (16,)) * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_numpy_backend_saves_erf_instead_of_recomputing():
    forward, backward = _entry_graphs("numpy")
    assert "erf" in _ops(forward) and "erf" not in _ops(backward)
    # What the backward needs of the GELU (x@w and erf's result) comes out of the forward.
    assert len(forward.outputs) > 1


def test_triton_backend_recomputes_elementwise_in_the_backward():
    forward, backward = _entry_graphs("triton")
    assert "erf" in _ops(backward)


@pytest.mark.parametrize("op,numpy_recomputes", [("erf", False), ("exp", False), ("tanh", False), ("eq", False),
                                                 ("div", False), ("mul", True), ("add", True), ("where", True),
                                                 ("reshape", True), ("permute", True), ("expand", True),
                                                 ("iota", True)])
def test_backend_costs(op, numpy_recomputes):
    assert recompute_policy("numpy", "cpu")(OPS[op]) is numpy_recomputes
    assert backends.get("numpy").recomputes(OPS[op]) is numpy_recomputes
    # The triton backend keeps the fusing default: elementwise, movement and creation are recomputed.
    assert recompute_policy("triton", "cpu")(OPS[op]) is default_recomputes(OPS[op]) is True
    assert default_recomputes(OPS["matmul"]) is False and default_recomputes(OPS["reduce_sum"]) is False
