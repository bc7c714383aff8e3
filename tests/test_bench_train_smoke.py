"""Tests of benchmarks/gpu_bench_train.py (the GPT block benchmark), without timing anything.

The smoke mode builds a tiny GPT block (32 wide, 2 heads, 2 x 16 tokens) twice, in tritonflow and
in torch, with the same weights, and compares output and every gradient with torch in float64 on
the same weights (the independent reference). These tests assert that agreement, that the check
is sharp enough to catch a small modelling difference, and that the GPU run's plumbing (check,
timing loop, table, JSON) works on a dry run on CPU.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from helpers import HAS_CUDA

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tritonflow.benchmarks import gpu_bench_train as bench  # noqa: E402

PARAMS = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
          "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
          "mlp.c_proj.weight", "mlp.c_proj.bias")


def _assert_all_close(rows: dict, bound: float) -> None:
    assert set(rows) == {"output", "x", *PARAMS}
    for name, row in rows.items():
        assert row["ok"], (name, row)
        assert row["vs_reference"] < bound, (name, row)


def _device(backend: str) -> str:
    # The triton backend runs CPU tensors only in Triton's interpreter (switched on when no GPU).
    return "cuda" if backend == "triton" and HAS_CUDA else "cpu"


def test_smoke_float32_agrees_with_float64_torch(backend):
    result = bench.run_smoke(backend, "float32", _device(backend))
    checks = result["checks"]
    assert set(checks) == {"tritonflow eager", f"tritonflow compiled ({backend})", "tritonflow compiled, 2nd call"}
    for rows in checks.values():
        # float32 through a block of this size: a few ulps of accumulated rounding, not more.
        _assert_all_close(rows, 1e-5)
    hits, misses, entries = result["cache"]
    assert (hits, misses, entries) == (1, 1, 1)  # the second step reused the compiled forward+backward


def test_smoke_bfloat16_numpy_within_torch_eager_error():
    # bf16 on the numpy backend (the spec): the gate is relative to torch eager's own bf16 error.
    result = bench.run_smoke("numpy", "bfloat16")
    for rows in result["checks"].values():
        _assert_all_close(rows, bench.ERROR_FLOOR["bfloat16"])
        for row in rows.values():
            assert row["torch_eager_vs_reference"] > 1e-4  # torch really ran in bf16: the gate is not vacuous


def _round_to_nearest_even_in_interpreter(monkeypatch) -> None:
    """Triton 3.6's interpreter casts float32 -> bfloat16 by truncation (its cast_impl passes no
    rounding mode); GPUs round to nearest even. Truncation is biased, and through a block it doubles
    or triples the bf16 error, so the interpreter is patched to round as the hardware does."""
    import triton.language as tl
    from triton.runtime import interpreter

    original = interpreter.InterpreterBuilder.cast_impl

    def cast_impl(self, src, dst_type):
        if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
            bits = np.ascontiguousarray(src.data).view(np.uint32).astype(np.uint64)
            rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
            rounded = np.where(np.isnan(src.data), np.uint16(0x7FC0), rounded)
            return interpreter.TensorHandle(rounded, dst_type.scalar)
        return original(self, src, dst_type)

    monkeypatch.setattr(interpreter.InterpreterBuilder, "cast_impl", cast_impl)


def test_smoke_bfloat16_triton_within_torch_eager_error(monkeypatch):
    # The GPU benchmark's gate, on the generated kernels in bf16 (tiny sizes).
    if not HAS_CUDA:
        _round_to_nearest_even_in_interpreter(monkeypatch)
    result = bench.run_smoke("triton", "bfloat16", _device("triton"))
    for rows in result["checks"].values():
        _assert_all_close(rows, bench.ERROR_FLOOR["bfloat16"])


def test_gradient_check_catches_erf_instead_of_tanh_gelu():
    # GELU(erf) and GELU(tanh) differ by ~1e-3 relative: a mismatch the float32 gate must flag.
    s = bench.build(bench.SMOKE_CONFIG, "cpu")
    reference = bench._grads_torch(s.reference_block, s.x.double(), s.ct.double())
    eager = bench._grads_torch(s.torch_block, s.x, s.ct)
    s.tf_block.mlp.gelu.approximate = "none"
    got = bench._grads_tf(s.tf_block, s.tf_block, s.tf_x, s.tf_ct)
    summary = bench.summarize(bench.compare(got, eager, reference, "float32"))
    assert not summary["ok"]
    assert "mlp.c_fc.weight" in summary["failed"] and "mlp.c_fc.bias" in summary["failed"]


def test_compare_flags_missing_and_misshapen_gradients():
    want = {"a": np.ones((2, 3)), "b": np.ones(4)}
    rows = bench.compare({"a": np.ones((3, 2)), "b": None}, want, want, "float32")
    assert not rows["a"]["ok"] and not rows["b"]["ok"]
    noisy = {"a": np.ones((2, 3)) * (1 + 2e-2), "b": np.ones(4)}
    rows = bench.compare(noisy, want, want, "bfloat16")
    assert not rows["a"]["ok"] and rows["b"]["ok"]  # 2e-2 relative is past the bf16 floor of 1.6e-2


def test_weights_are_copied_bit_for_bit_in_bfloat16():
    cfg = dataclasses.replace(bench.SMOKE_CONFIG, dtype="bfloat16")
    s = bench.build(cfg, "cpu")
    theirs = s.torch_block.state_dict()
    for name, p in s.tf_block.named_parameters():
        assert p.dtype.name == "bfloat16"
        np.testing.assert_array_equal(bench._as_f64(p), theirs[name].double().numpy())
    np.testing.assert_array_equal(bench._as_f64(s.tf_x), s.x.detach().double().numpy())


def test_gpu_pipeline_dry_run_on_cpu(tmp_path, capsys):
    # The GPU run's code path end to end on a tiny block: check, timing loop, table, JSON.
    result = bench.run_gpu(bench.SMOKE_CONFIG, with_torch_compile=False, device="cpu", backend="numpy")
    assert result["gradient_ok"] and not result["notes"]
    assert set(result["ms"]) == {"torch eager", "tritonflow compiled (numpy)"}
    table = bench.report(result, "cpu", str(tmp_path))
    assert "| tritonflow compiled (numpy) |" in table and "PASS" in table and "Goal" in table
    written = sorted(p.name for p in tmp_path.iterdir())
    assert len(written) == 2 and written[0].endswith(".json") and written[1].endswith(".md")
    payload = json.loads((tmp_path / written[0]).read_text())
    for field in ("card", "date", "python", "torch", "triton", "commit"):
        assert field in payload["meta"]
    assert payload["gradient_ok"] is True
    assert table in capsys.readouterr().out


def test_cli_smoke_exits_zero_and_prints_the_table():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_bench_train.py"), "--device", "cpu",
                           "--smoke"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("| PASS |") == 3
