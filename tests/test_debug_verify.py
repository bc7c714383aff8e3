"""tritonflow.debug.verify: every kernel agrees with the interpreter on a correct lowering, and a
deliberately corrupted kernel is the one reported — with its IR nodes, the user's source lines,
its generated source path and the error measured. TRITONFLOW_VERIFY reports it on first call.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import tritonflow as tf
from tritonflow.debug import verify
from tritonflow.errors import VerificationError
from tritonflow.ops.registry import OPS

F = tf.nn.functional
THIS_FILE = os.path.basename(__file__)


def model(x, w):
    h = F.softmax(x @ w, -1)                      # matmul kernel, then a reduction kernel
    return F.layer_norm(h * 2.0 + 1.0, (h.shape[-1],))


def inputs():
    rng = np.random.default_rng(0)
    return (tf.from_numpy(rng.standard_normal((5, 7)).astype(np.float32)),
            tf.from_numpy(rng.standard_normal((7, 9)).astype(np.float32)))


def corrupt(monkeypatch, kernel_kind: str, delta: float = 0.5):
    """Make every launch of kernels of `kernel_kind` add `delta` to what they write."""
    import tritonflow.kernels.lowering as lowered_module
    real = lowered_module.LoweredGraph._launch
    corrupted = []

    def launch(self, kernel, env, symbols):
        real(self, kernel, env, symbols)
        if kernel.generated.kind == kernel_kind:
            corrupted.append(kernel.generated.name)
            for node in kernel.generated.writes:
                if node.dtype.is_floating_point:
                    env[id(node)].add_(delta)
    monkeypatch.setattr(lowered_module.LoweredGraph, "_launch", launch)
    return corrupted


def test_correct_kernels_all_agree():
    report = verify(model, *inputs(), backend="triton")
    assert report.ok, str(report)
    assert report.first_divergence is None
    assert len(report.checks) >= 2
    assert "agree with the interpreter" in str(report)


def test_corrupted_kernel_is_found(monkeypatch):
    corrupted = corrupt(monkeypatch, "reduction")
    x, w = inputs()
    report = verify(model, x, w, backend="triton")
    assert corrupted, "no reduction kernel was launched"
    assert not report.ok
    first = report.first_divergence
    assert first is not None and first.name == corrupted[0]
    assert all(c.ok for c in report.checks[:report.checks.index(first)])  # the matmul before it agrees
    assert first.ratio > 1 and first.max_abs_error >= 0.4
    assert first.source_path and os.path.exists(first.source_path)
    assert any("softmax" in line or "layer_norm" in line for line in first.ir_nodes + first.user_lines)
    assert any(f"{THIS_FILE}:" in line for line in first.user_lines)
    text = str(report)
    assert "DIVERGES" in text and first.source_path in text and "user source:" in text
    # ... and the compiled function really is wrong under the corruption (the report is not a false alarm)
    got = tf.jit(model, backend="triton")(x, w).numpy()
    assert np.abs(got - model(x, w).numpy()).max() > 0.1


def test_only_the_corrupted_kernel_is_blamed(monkeypatch):
    """A corrupted matmul must not make the reduction after it diverge: each kernel reads the spec's values."""
    corrupt(monkeypatch, "matmul")
    report = verify(model, *inputs(), backend="triton")
    bad = [c.name for c in report.checks if not c.ok]
    assert bad and all("matmul" in name for name in bad), str(report)


def test_numpy_backend_checks_every_node():
    report = verify(model, *inputs(), backend="numpy")
    assert report.ok, str(report)
    assert len(report.checks) >= 10


def test_numpy_backend_finds_an_op_that_loses_precision(monkeypatch):
    real = OPS["exp"].numpy

    def sloppy_exp(x):
        out = real(x)
        return out * 1.01 if x.dtype != np.float64 else out   # wrong at low precision only
    monkeypatch.setattr(OPS["exp"], "numpy", sloppy_exp)

    def f(x):
        return tf.exp(x) + 1.0

    x = tf.from_numpy(np.linspace(-1, 1, 11, dtype=np.float32))
    report = verify(f, x, backend="numpy")
    assert not report.ok
    first = report.first_divergence
    assert first.name == "exp"
    assert any(f"{THIS_FILE}:" in line and "tf.exp(x)" in line for line in first.user_lines)


def test_verify_env_hook_warns_or_raises(monkeypatch):
    monkeypatch.setenv("TRITONFLOW_VERIFY", "1")  # read per call, not once at import
    corrupt(monkeypatch, "reduction")
    x, w = inputs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tf.jit(model, backend="triton")(x, w)
    assert any("DIVERGES" in str(c.message) for c in caught)
    monkeypatch.setenv("TRITONFLOW_VERIFY", "raise")
    with pytest.raises(VerificationError, match="DIVERGES"):
        tf.jit(model, backend="triton")(x, w)


def test_verify_rejects_non_callables():
    with pytest.raises(tf.TritonflowError, match="verify: expected a function"):
        verify(42)
