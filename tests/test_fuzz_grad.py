"""The gradient fuzzer (`python -m tritonflow.fuzz --grad`): fixed seeds of random differentiable
programs agree with torch float64 (eager, jit, jit(grad)) on each backend, the central-difference
fallback agrees too, and an injected wrong vjp rule is found, shrunk and written out as a
standalone reproducer, by either reference. Also the defects the fuzzer found, as regressions.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import tritonflow as tf
from helpers import lowering_available, regions_counted
from tritonflow.fuzz import check_grad, fuzz, generate
from tritonflow.fuzz.__main__ import main
from tritonflow.fuzz.generate import KINK_MARGIN
from tritonflow.ops.registry import OPS

NUMPY_PROGRAMS, TRITON_PROGRAMS, FALLBACK_PROGRAMS = 200, 50, 40


def _assert_clean(summary, programs: int) -> None:
    assert summary.programs == programs
    assert summary.statuses["ok"] == programs and not summary.failures, str(summary)
    assert set(summary.dtypes) == {"float32", "float64"}, summary.dtypes


def test_numpy_backend_programs_against_torch(tmp_path):
    _assert_clean(fuzz(NUMPY_PROGRAMS, seed=0, backend="numpy", out_dir=str(tmp_path), grad=True), NUMPY_PROGRAMS)
    assert not list(tmp_path.iterdir())


def test_triton_backend_programs_against_torch(tmp_path):
    assert lowering_available(), "kernels.lower is missing: the triton backend cannot be fuzzed"
    summary = fuzz(TRITON_PROGRAMS, seed=1, backend="triton", out_dir=str(tmp_path), grad=True)
    _assert_clean(summary, TRITON_PROGRAMS)


def test_c_backend_gradients_fixed_seed(tmp_path, monkeypatch):
    counts = regions_counted(monkeypatch, tmp_path)
    summary = fuzz(100, seed=0, backend="c", out_dir=str(tmp_path), grad=True)
    assert summary.programs == 100 and summary.mismatches == 0 and not summary.failures, str(summary)
    assert counts["regions"] >= 100, counts


def test_central_difference_fallback_agrees():
    checker = functools.partial(check_grad, use_torch=False)
    _assert_clean(fuzz(FALLBACK_PROGRAMS, seed=2, backend="numpy", grad=True, checker=checker), FALLBACK_PROGRAMS)


def test_grad_programs_avoid_kinks_and_random_numbers():
    seen_kinks = 0
    for seed in range(60):
        prog, _, _ = generate(seed, grad=True)
        assert prog.dtype in ("float32", "float64") and prog.tags == {"grad": True}
        text = prog.source()
        assert "dropout" not in text and "rand" not in text and "amax" not in text and "//" not in text
        seen_kinks += text.count("tf.abs(v") + text.count("relu(v")
    assert seen_kinks > 0   # kinks of computed values are drawn (and kept away from their corner)
    assert KINK_MARGIN > 0


def _wrong_tanh_vjp(original):
    def vjp(g, out, x, **attrs):
        (gx,) = original(g, out, x, **attrs)
        return (gx * 1.01,)
    return vjp


@pytest.mark.parametrize("use_torch", [True, False], ids=["torch", "central-differences"])
def test_injected_vjp_bug_is_found_shrunk_and_reproduced(tmp_path, monkeypatch, use_torch):
    monkeypatch.setattr(OPS["tanh"], "vjp", _wrong_tanh_vjp(OPS["tanh"].vjp))
    checker = functools.partial(check_grad, use_torch=use_torch)
    summary = fuzz(40, seed=3, backend="numpy", out_dir=str(tmp_path), grad=True, checker=checker,
                   dtypes=("float64",))
    assert summary.mismatches > 0
    _, outcome, path = summary.failures[0]
    assert outcome.status == "mismatch" and "eager" in outcome.detail
    namespace: dict = {"__name__": "reproducer"}
    exec(compile(open(path).read(), path, "exec"), namespace)   # standalone Python
    prog = namespace["PROGRAM"]
    assert prog.tags == {"grad": True} and len(prog.nodes) <= 3, prog.source()
    assert any("tanh" in n.expr or "gelu(" in n.expr for n in prog.nodes), prog.source()
    assert namespace["check"](prog, "numpy").failed   # it still fails while the bug is in


def test_cli_grad_flag(capsys):
    assert main(["--grad", "--graphs", "8", "--seed", "4", "--no-shrink"]) == 0
    out = capsys.readouterr().out
    assert "gradients" in out and "mismatches (wrong values or crashes): 0" in out


# ---------------------------------------------------------------- defects the fuzzer found

@pytest.mark.parametrize("dims", [(1,), (0,), None])
def test_prod_gradient_with_zeros_matches_torch(backend, dims):
    """prod's vjp was out / x: 0 / 0 = NaN at a zero (found as prod over a log_softmax of a size-1
    dim). Rows with no zero, one zero and two zeros."""
    a = np.array([[1.5, 0.0, 3.0], [0.0, 0.0, 2.0], [2.0, -3.0, 0.5]], np.float32)
    t = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    w = np.float32(2.0) if dims is None else np.arange(1, 4, dtype=np.float32)
    product = torch.prod(t) if dims is None else torch.prod(t, dims[0])
    (product * torch.tensor(w, dtype=torch.float64)).sum().backward()

    def loss(x):
        return (tf.prod(x, dim=dims) * tf.tensor(w)).sum()

    x = tf.tensor(a, requires_grad=True)
    loss(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(tf.jit(tf.grad(loss), backend=backend)(tf.tensor(a)).numpy(), t.grad.numpy(),
                               rtol=1e-6)
