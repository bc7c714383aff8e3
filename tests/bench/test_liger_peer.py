"""Liger-Kernel as a benchmark peer (benchmarks/liger_peer.py): where it runs and why not elsewhere,
its cross-entropy and fused linear cross-entropy kernels against float64 at tiny sizes in Triton's
interpreter (the GPU smoke test's mode), a Liger call with other semantics caught by that check, its
argument copies keeping the other providers' inputs intact, and the two interpreter limits that keep
rms_norm, SwiGLU and the cross-entropy backward's check for a GPU. No assertion is about a time."""
import sys

import numpy as np
import pytest

from tritonflow.benchmarks import liger_peer, peers
from tritonflow.benchmarks.workloads import by_name

LIGER = liger_peer.PROVIDER


def test_liger_runs_only_on_the_workloads_it_covers_on_a_gpu():
    on_gpu = "Liger-Kernel's kernels run on a GPU; this run is on the CPU"
    for key in ("rms_norm", "cross_entropy", "softmax"):
        assert liger_peer.unavailable(by_name(key), "cpu", "numpy") == on_gpu  # `tritonflow bench` on a CPU
    assert liger_peer.COVERED == ("rms_norm", "rms_norm_bwd", "swiglu", "cross_entropy", "cross_entropy_bwd",
                                  "linear_cross_entropy")
    with pytest.raises(KeyError, match="no kernel for workload 'softmax'; it covers rms_norm, rms_norm_bwd"):
        liger_peer.function(by_name("softmax"))


def test_without_liger_kernel_every_workload_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers.functional", None)  # import fails
    for key in ("rms_norm", "softmax"):
        reason = liger_peer.unavailable(by_name(key), "cuda", "triton")
        assert reason.startswith("liger_kernel does not import (ModuleNotFoundError: ") \
            and reason.endswith("pip install liger-kernel"), reason
    result = peers.measure(by_name("cross_entropy"), "tiny", quick=True, compiled_backend="triton", repeats=1,
                           providers=("torch eager", LIGER))
    assert result.providers[LIGER].unavailable.startswith("liger_kernel does not import")
    assert result.providers["torch eager"].max_error is not None


def test_in_the_interpreter_liger_reports_why_each_workload_waits_for_a_gpu():
    pytest.importorskip("liger_kernel")
    reasons = {key: liger_peer.unavailable(by_name(key), "cpu", "triton") for key in liger_peer.COVERED}
    assert reasons["cross_entropy"] is None and reasons["linear_cross_entropy"] is None
    for key in ("rms_norm", "rms_norm_bwd", "swiglu"):
        assert reasons[key].startswith("Triton's interpreter passes a float kernel argument as a Python float")
    assert reasons["cross_entropy_bwd"].startswith("Triton's interpreter misreads a bfloat16 scalar")
    assert liger_peer.unavailable(by_name("softmax"), "cpu", "triton") == (
        "Liger-Kernel has kernels for rms_norm, rms_norm_bwd, swiglu, cross_entropy, cross_entropy_bwd, "
        "linear_cross_entropy only")
    assert liger_peer.unavailable(by_name("rms_norm"), "cuda", "triton") is None


@pytest.mark.parametrize("key", ["cross_entropy", "linear_cross_entropy"])
def test_liger_agrees_with_float64(key):
    pytest.importorskip("liger_kernel")
    result = peers.measure(by_name(key), "tiny", quick=True, compiled_backend="triton", repeats=1,
                           providers=("torch eager", LIGER))
    entry = result.providers[LIGER]
    assert entry.unavailable is None and entry.max_error < peers.TOLERANCE["bfloat16"] and entry.seconds > 0, entry
    assert result.providers["tritonflow compiled"].unavailable == "not chosen"


def test_a_liger_call_with_other_semantics_fails_the_check(monkeypatch):
    pytest.importorskip("liger_kernel")

    def summed(liger):  # reduction "sum" where the workload means "mean"
        return lambda logits, target: liger.liger_cross_entropy(logits, target, reduction="sum")
    monkeypatch.setitem(liger_peer._BUILDERS, "cross_entropy", summed)
    with pytest.raises(peers.Mismatch, match=r"^cross_entropy 16x300 bf16: liger differs from the float64 reference"):
        peers.measure(by_name("cross_entropy"), "tiny", quick=True, compiled_backend="triton", repeats=1,
                      providers=(LIGER,))


def test_liger_overwrites_only_its_own_copies_of_the_arguments(monkeypatch):
    """Liger's cross-entropy writes the gradient over the logits in its forward: its later calls see
    other logits, and torch eager's arguments, shared with nobody else, must stay as they were. (Its
    gradient is not checked here: the interpreter misreads the cotangent, see the last test.)"""
    pytest.importorskip("liger_kernel")
    monkeypatch.delitem(liger_peer.NOT_IN_INTERPRETER, "cross_entropy_bwd")
    steps, unavailable, reference, _ = peers.prepare(by_name("cross_entropy_bwd"), "tiny", "cpu", "triton",
                                                     ("torch eager", LIGER))
    assert LIGER not in unavailable
    loss = peers._as_f64(reference()[0])
    first = peers._as_f64(steps[LIGER]()[0])
    second = peers._as_f64(steps[LIGER]()[0])
    assert abs(first - loss) < 4e-2 * abs(loss) and not abs(second - loss) < 0.5 * abs(loss)  # overwritten
    assert abs(peers._as_f64(steps["torch eager"]()[0]) - loss) < 4e-2 * abs(loss)


def test_the_interpreter_limits_behind_the_gpu_only_checks_still_hold():
    """If a Triton release fixes these, NOT_IN_INTERPRETER should shrink and the smoke test check more."""
    pytest.importorskip("liger_kernel")
    import torch
    import torch.nn.functional as F
    from liger_kernel.transformers.functional import liger_cross_entropy, liger_rms_norm
    from triton.runtime.errors import InterpreterError

    x, w = torch.randn(4, 64, dtype=torch.bfloat16), torch.randn(64, dtype=torch.bfloat16)
    with pytest.raises(InterpreterError, match="'float' object has no attribute 'to'"):
        liger_rms_norm(x, w, 1e-5)
    logits = torch.randn(4, 64, dtype=torch.bfloat16)
    target = torch.tensor([1, 5, 7, 63])
    reference = logits.double().requires_grad_()
    (F.cross_entropy(reference, target) * 0.75).backward()
    ours = logits.clone().requires_grad_()
    liger_cross_entropy(ours, target).backward(torch.tensor(0.75, dtype=torch.bfloat16))
    error = np.abs(ours.grad.double().numpy() - reference.grad.numpy()).max() / np.abs(reference.grad.numpy()).max()
    assert not error < 0.1  # misread (or NaN): far from the float64 gradient
    ones = logits.clone().requires_grad_()
    liger_cross_entropy(ones, target).backward()  # a cotangent of 1 skips the scaling: right
    error = np.abs(0.75 * ones.grad.double().numpy() - reference.grad.numpy()).max() / np.abs(reference.grad.numpy()).max()
    assert error < peers.TOLERANCE["bfloat16"]
