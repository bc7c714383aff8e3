"""The per-kernel hook: LoweredGraph.start_run and the triton backend's kernel_run.

The graph: s = rowsum(x); out = x - colsum(x * s), two reduction kernels with s stored between
them. A run launched kernel by kernel gives what a call gives; poisoned buffers hold NaN until a kernel
writes them; a value filled into an intermediate buffer is what the next kernel reads.
"""
from __future__ import annotations

import numpy as np
import torch

from tritonflow import backends
from tritonflow.kernels.lowering import lower
from kernel_helpers import DEVICE, Builder, to_torch


def two_kernels():
    b = Builder("two_kernels")
    x = b.input("x", (4, 8))
    s = b("reduce_sum", x, dims=(1,), keepdim=True)
    t = b("reduce_sum", b("mul", x, s), dims=(0,), keepdim=True)
    return b.finish(b("sub", x, t)), s


X = (np.arange(32, dtype=np.float32).reshape(4, 8) - 16) / 32


def reference(row_sums: np.ndarray) -> np.ndarray:
    x = X.astype(np.float64)
    return x - (x * row_sums).sum(0, keepdims=True)


def test_start_run_launched_kernel_by_kernel_matches_a_call():
    graph, s = two_kernels()
    lowered = lower(graph)
    run = lowered.start_run([to_torch(X)], poison=True)
    assert len(run.kernels) == 2
    stored = [node for node in (s,) if id(node) in run.buffers]
    assert stored and all(torch.isnan(run.buffers[id(n)]).all() for n in stored)  # poisoned, not leftovers
    for kernel in run.kernels:
        run.launch(kernel)
    got = run.output(graph.outputs[0]).cpu().numpy()
    np.testing.assert_allclose(got, reference(X.astype(np.float64).sum(1, keepdims=True)), rtol=1e-5, atol=1e-6)
    (called,) = lowered([to_torch(X)])
    np.testing.assert_array_equal(called.cpu().numpy(), got)


def test_kernel_run_feeds_a_filled_buffer_to_the_next_kernel():
    graph, s = two_kernels()
    backend = backends.get("triton", DEVICE)
    runner = backend.compile(graph)
    arrays = [X] if DEVICE == "cpu" else [to_torch(X)]
    run = backend.kernel_run(runner, arrays, DEVICE)
    first, second = run.steps
    assert first.writes and s in first.writes and s in second.reads
    assert any("reduce_sum" in line for line in first.ir_lines)
    assert {n.op for n in second.nodes} >= {"mul", "reduce_sum", "sub"}
    run.launch(first)
    np.testing.assert_allclose(run.read(s), X.astype(np.float64).sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    chosen = np.array([[1.0], [-1.0], [0.5], [0.0]], np.float32)
    run.fill(s, chosen)
    run.launch(second)
    np.testing.assert_allclose(run.output(graph.outputs[0]), reference(chosen.astype(np.float64)), rtol=1e-5, atol=1e-5)
