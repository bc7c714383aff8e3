"""The differential fuzzer: a fixed seed of programs agrees with the float64 reference on each
backend, and an injected bug is found, shrunk and written out as a reproducer that still fails.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers import lowering_available, regions_counted
from tritonflow.fuzz import check, fuzz, generate
from tritonflow.fuzz.__main__ import main
from tritonflow.fuzz.generate import _range_limit
from tritonflow.ops.registry import OPS
from tritonflow import dtypes as D


def test_numpy_backend_300_programs_fixed_seed(tmp_path):
    summary = fuzz(300, seed=0, backend="numpy", out_dir=str(tmp_path))
    assert summary.programs == 300
    assert len(summary.dtypes) == 7, summary.dtypes  # every dtype drawn
    assert summary.mismatches == 0, str(summary)
    assert not list(tmp_path.iterdir())  # no reproducer written when nothing failed


TRITON_PROGRAMS = 300


def test_triton_backend_programs_fixed_seed(tmp_path):
    """The CI run of issue 6: a fixed seed of 300 programs under Triton's interpreter, with zero
    wrong values and zero crashes (every failure is shrunk and written out; its path is in the
    message)."""
    assert lowering_available(), "kernels.lower is missing: the triton backend cannot be fuzzed"
    summary = fuzz(TRITON_PROGRAMS, seed=1, backend="triton", out_dir=str(tmp_path))
    assert summary.programs == TRITON_PROGRAMS
    assert summary.statuses["ok"] == TRITON_PROGRAMS, str(summary)
    assert summary.mismatches == 0 and not summary.failures, str(summary)
    assert len(summary.dtypes) == 7, summary.dtypes


C_PROGRAMS = 300


def test_c_backend_programs_fixed_seed(tmp_path, monkeypatch):
    """Random programs on the c backend with every row-wise part compiled as C: zero wrong values,
    zero crashes, and most programs really ran generated code."""
    counts = regions_counted(monkeypatch, tmp_path)
    summary = fuzz(C_PROGRAMS, seed=0, backend="c", out_dir=str(tmp_path))
    assert summary.programs == C_PROGRAMS and len(summary.dtypes) == 7, summary.dtypes
    assert summary.mismatches == 0 and not summary.failures, str(summary)
    assert counts["regions"] >= C_PROGRAMS // 2, counts


def _wrong_exp(original):
    def run(x, **attrs):
        out = original(x, **attrs)
        if x.dtype != np.float64:  # the float64 reference stays right; the backend under test is off
            out = out * 1.001
        return out
    return run


def test_injected_bug_is_found_shrunk_and_reproduced(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(OPS["exp"], "numpy", _wrong_exp(OPS["exp"].numpy))
    summary = fuzz(60, seed=3, backend="numpy", out_dir=str(tmp_path), dtypes=("float32",))
    assert summary.mismatches > 0
    index, outcome, path = summary.failures[0]
    assert outcome.status == "mismatch"
    text = open(path).read()
    namespace: dict = {"__name__": "reproducer"}
    exec(compile(text, path, "exec"), namespace)  # the reproducer is standalone Python
    prog = namespace["PROGRAM"]
    assert len(prog.nodes) <= 2, prog.source()  # shrunk to the line that matters
    assert any("exp" in n.expr or "gelu" in n.expr or "sigmoid" in n.expr or "logsumexp" in n.expr
               or "softmax" in n.expr or "silu" in n.expr for n in prog.nodes), prog.source()
    assert check(prog, "numpy").failed  # still fails, exactly as written out
    monkeypatch.undo()
    assert not check(prog, "numpy").failed  # and passes once the bug is gone

    monkeypatch.setattr(OPS["exp"], "numpy", _wrong_exp(OPS["exp"].numpy))
    code = main(["--graphs", "20", "--seed", "3", "--dtypes", "float32", "--out", str(tmp_path / "cli")])
    assert code == 1
    assert "mismatches (wrong values or crashes):" in capsys.readouterr().out


def test_cli_exit_zero_on_agreement(tmp_path, capsys):
    assert main(["--graphs", "15", "--seed", "5", "--out", str(tmp_path)]) == 0
    assert "programs run: 15" in capsys.readouterr().out


def test_generated_references_never_overflow_the_program_dtype():
    regenerated = 0
    for seed in range(40):
        prog, rejected, crashes = generate(seed, dtypes=("float16", "int8"))
        regenerated += rejected
        assert not crashes, crashes
        from tritonflow.fuzz.check import reference
        _, values = reference(prog)
        limit = _range_limit(prog.dtype)
        for v in values:
            if v.dtype != np.bool_ and v.size:
                assert np.all(np.isfinite(v.astype(np.float64))) and np.abs(v.astype(np.float64)).max() <= limit
    assert regenerated > 0  # float16 exp chains and int8 products do overflow, and were drawn again
    assert D.as_dtype("float16")  # dtype names the fuzzer uses are tritonflow's


# Shrunk programs the fuzzer found (kernel bugs since fixed), replayed on both backends.
FOUND = [
    ("flip_of_flatten_f16", "float16", [1, 2, 2, 1], [("x2", [2, 1])], [("v1", "x2.flatten()"),
                                                                          ("v4", "tf.flip(v1, (0,))")], ["v4"]),
    ("flip_of_flatten_int8", "int8", [1, 1, 1, 2], [("x2", [3, 3, -1, 2])], [("v0", "x2.flatten()"),
                                                                               ("v3", "tf.flip(v0, (0,))")], ["v3"]),
    ("identity_view_output", "bfloat16", [3, 1, 1, 1], [("x1", [0])], [("v4", "x1.T.contiguous()")], ["v4"]),
    ("cumsum_size1_dim", "float16", [1, 1, 1, 1], [("x0", [-1, 1])], [("v4", "tf.cumsum(x0, 0)")], ["v4"]),
]


@pytest.mark.parametrize("case", FOUND, ids=[c[0] for c in FOUND])
def test_programs_the_fuzzer_found(backend, case):
    from tritonflow.fuzz.program import Node, Program
    _, dtype, sizes, inputs, nodes, outputs = case
    prog = Program(dtype, sizes, inputs, [Node(n, e) for n, e in nodes], outputs, input_seed=7)
    outcome = check(prog, backend)
    assert outcome.status == "ok", outcome.detail


def test_programs_reach_every_primitive_of_the_op_table():
    """Over a few hundred seeds the generated programs trace to every primitive of the op table,
    but the attention backward ops (only autodiff emits them; the fuzzer runs forward programs)
    and the collectives (they need other processes)."""
    import re

    import tritonflow as tf
    seen: set = set()
    for seed in range(300):
        prog, _, _ = generate(seed)
        fn = tf.jit(prog.function(tf.float32), backend="numpy")
        traced = tf.explain(fn, *[tf.from_numpy(a) for a in prog.make_inputs()]).passes[0][1]
        seen |= set(re.findall(r"= (\w+)", traced))
    backward_only = {"attention_dq", "attention_dkv", "attention_lse", "attention_delta"}
    # Collectives need a process group; tests/distributed runs them across processes.
    collectives = {name for name, op in OPS.items() if op.extra.get("collective")}
    assert collectives == {"all_reduce", "broadcast", "all_gather", "reduce_scatter"}
    assert set(OPS) - backward_only - collectives <= seen, sorted(set(OPS) - backward_only - collectives - seen)
