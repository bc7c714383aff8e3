"""Ahead-of-time compilation for real GPU targets on this CPU-only machine (tritonflow/aot.py).

Kernels are compiled with Triton for sm_90 / sm_80 in worker processes (this process runs Triton's
interpreter); the facts checked are the compiler's own: a cubin's registers and stack, Hopper-only
wgmma instructions, shared memory below the chip's limit, and the grid a size implies.
"""
import math
import os
import subprocess
import sys
import textwrap

import pytest

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow import aot
from tritonflow.target import SM_80, SM_90

S = tf.TensorSpec
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _softmax(x):
    return F.softmax(x, dim=-1)


def test_tensor_spec_is_the_public_name_and_checks_its_fields():
    assert tf.TensorSpec is aot.TensorSpec
    spec = S((8192, "batch"), "bfloat16", requires_grad=True)
    assert spec.shape == (8192, "batch") and spec.dtype is tf.bfloat16 and spec.requires_grad
    with pytest.raises(tf.ShapeError, match="each dim must be a size"):
        S((4, -1))
    with pytest.raises(tf.ShapeError, match="identifier"):
        S(("two words",))
    with pytest.raises(tf.ShapeError, match="only floating-point"):
        S((4,), "int64", requires_grad=True)


def _norm(x, w, b):
    return F.layer_norm(x, (512,), w, b)


def _matmul(a, b):
    return a @ b


@pytest.fixture(scope="module")
def reports():
    """Every compile of this file's checks in one pool of workers (one start-up)."""
    mm = [S((512, 512), "bfloat16"), S((512, 512), "bfloat16")]
    names = ["softmax", "hopper", "ampere", "training", "dynamic", "module"]
    model = tf.nn.Sequential(tf.nn.Linear(32, 64), tf.nn.GELU(), tf.nn.Linear(64, 16))
    found = aot.compile_all([
        (_softmax, [S((16384, 4096), "float32")], "sm_90"),
        (_matmul, mm, "sm_90"),
        (_matmul, mm, "sm_80"),
        (_norm, [S((4096, 512), "bfloat16", True), S((512,), "bfloat16", True), S((512,), "bfloat16", True)],
         "sm_90"),
        (_softmax, [S(("rows", 64), "float32")], "sm_90", {"rows": 1000}),
        (tf.compile(model), [S((128, 32), "float32")], "sm_90"),
    ])
    return dict(zip(names, found))


def test_softmax_compiles_for_sm_90_with_its_measured_configuration(reports):
    report = reports["softmax"]
    (kernel,) = report.kernels
    assert kernel.error is None and report.ok
    # DESIGN.md's measured softmax: one 4096-wide row per program, 8 warps.
    assert (kernel.config["XBLOCK"], kernel.config["RBLOCK"], kernel.config["num_warps"]) == (1, 4096, 8)
    assert kernel.grid == (16384,)
    assert 0 < kernel.registers <= 255 and kernel.stack_bytes == 0
    assert 0 < kernel.shared_bytes <= SM_90.shared_memory and kernel.shared_limit == SM_90.shared_memory
    assert kernel.wgmma is False and kernel.seconds > 0
    text = str(report)
    assert "k0_reduction" in text and "X1 R4096 w8" in text and "0 failed, 0 spill" in text


def test_wgmma_only_on_hopper(reports):
    (hopper,), (ampere,) = reports["hopper"].kernels, reports["ampere"].kernels
    assert hopper.wgmma is True and ampere.wgmma is False
    assert hopper.error is None and ampere.error is None
    assert ampere.shared_bytes <= SM_80.shared_memory


def test_forward_and_backward_graphs_are_compiled_for_training_specs(reports):
    report = reports["training"]
    graphs = {k.graph for k in report.kernels}
    assert graphs == {"forward", "backward"} and report.ok
    # The weight and bias gradients sum 4096 rows per column: looped on a GPU, never held whole.
    column = [k for k in report.kernels if k.graph == "backward" and k.config.get("XBLOCK", 1) > 1]
    assert column and all(k.config["RBLOCK"] < 4096 for k in column)


def test_a_compiled_module_compiles_with_its_parameters(reports):
    report = reports["module"]
    # The parameters require grad: the forward (two matmuls) and the backward are compiled.
    assert {k.graph for k in report.kernels} == {"forward", "backward"}
    assert sum(k.kind == "matmul" and k.graph == "forward" for k in report.kernels) == 2
    assert not report.failures


def test_dynamic_dims_take_their_size_and_stay_arguments(reports):
    report = reports["dynamic"]
    (kernel,) = report.kernels
    assert report.symbols == {"s0": 1000} and report.symbol_names == {"s0": "rows"}
    rows_per_program = kernel.config["XBLOCK"]
    assert kernel.grid == (math.ceil(1000 / rows_per_program),)
    assert "rows=1000" in str(report)


def test_clear_errors():
    with pytest.raises(tf.UnsupportedError, match="unknown target 'sm_42'"):
        aot.compile(_softmax, S((4, 4)), target="sm_42")
    with pytest.raises(tf.UnsupportedError, match="choose a GPU target"):
        aot.compile(_softmax, S((4, 4)), target="interpreter")
    with pytest.raises(tf.ShapeError, match=r"do not fit lambda: matmul: inner dimensions differ"):
        aot.compile(lambda a, b: a @ b, S((4, 8)), S((16, 4)), target="sm_90")
    with pytest.raises(tf.TraceError, match="do not fit _softmax"):
        aot.compile(_softmax, S((4, 4)), S((4, 4)), target="sm_90")
    with pytest.raises(tf.ShapeError, match="sizes given for cols"):
        aot.compile(_softmax, S(("rows", 4)), target="sm_90", sizes={"cols": 3})


def test_missing_triton_is_a_clear_error(monkeypatch):
    import importlib.util
    from tritonflow.kernels import aot_pool
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real(name, *a))
    with pytest.raises(tf.UnsupportedError, match=r"needs triton and torch installed.*missing: triton"):
        aot_pool.triton_available()


def test_explain_with_a_target_shows_the_resource_table():
    text = str(tf.explain(_softmax, S((2048, 1024), "float32"), target="sm_90"))
    assert "Compiled ahead of time for sm_90" in text and "k0_reduction" in text and "cost model:" in text
    assert "Guards" in text    # the ordinary explanation is still there


def test_cli_aot_and_precompile(tmp_path, monkeypatch, capsys):
    from tritonflow.cli import main
    (tmp_path / "model.py").write_text(textwrap.dedent("""
        import tritonflow as tf
        def block(x, w):
            return tf.relu(x @ w)
    """))
    monkeypatch.chdir(tmp_path)
    rc = main(["aot", "--target", "sm_90", "model.py:block", "--spec", "batch,256:bfloat16",
               "--spec", "256,256:bfloat16", "--size", "batch=512", "--json", "report.json"])
    out = capsys.readouterr().out
    assert rc == 0 and "k0_matmul" in out and "batch=512" in out
    assert '"target": "sm_90"' in (tmp_path / "report.json").read_text()
    assert main(["aot", "--target", "sm_75", "model.py:block", "--spec", "4,4", "--spec", "4,4"]) == 2
    assert "unknown target 'sm_75'" in capsys.readouterr().err
    assert main(["aot", "model.py:block", "--spec", "4,8", "--spec", "4,4"]) == 2
    assert "do not fit block" in capsys.readouterr().err
    assert main(["aot", "model.py:block", "--spec", "4,x,:float32:grad:more"]) == 2
    assert "expected DIMS[:DTYPE][:grad]" in capsys.readouterr().err
    cache = tmp_path / "cache"
    rc = main(["precompile", "--target", "sm_80", "--cache-dir", str(cache), "model.py:block",
               "--spec", "512,256:bfloat16", "--spec", "256,256:bfloat16"])
    assert rc == 0 and f"TRITON_CACHE_DIR={cache}" in capsys.readouterr().out and any(cache.iterdir())


def test_console_script_runs_aot(tmp_path):
    """The installed entry point: `python -m tritonflow.cli aot` in a fresh process (no interpreter)."""
    (tmp_path / "model.py").write_text("import tritonflow as tf\n\ndef f(x):\n    return tf.exp(x) * 2\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-m", "tritonflow.cli", "aot", "model.py:f", "--spec", "4096:float16"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "k0_pointwise" in done.stdout and "0 failed, 0 spill" in done.stdout


def test_forward_backward_compiles_without_the_interpreter(tmp_path):
    """aot.compile of a differentiable function in a process without TRITON_INTERPRET (a login
    node preparing GPU kernels): the backward is partitioned as the triton backend would, without
    asking for a runnable triton backend on CPU (that check failed the whole AOT check once)."""
    script = textwrap.dedent("""
        import tritonflow as tf
        import tritonflow.nn.functional as F
        from tritonflow import aot
        S = tf.TensorSpec
        report = aot.compile(lambda x, w, b: F.layer_norm(x, (256,), w, b),
                             S((64, 256), "float32", requires_grad=True), S((256,), "float32", requires_grad=True),
                             S((256,), "float32", requires_grad=True), target="sm_90")
        print(report)
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = ROOT
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "0 failed" in done.stdout and "reduction" in done.stdout, done.stdout[-2000:]
