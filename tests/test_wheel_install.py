"""Packaging: the wheel holds only `tritonflow/...` and works installed beside PyPI's `kernels`
(Hugging Face's) and `tracer` packages, whose top-level names tritonflow's folders used to take.

Builds the wheel from the tracked files, installs it with PyPI's `kernels` and `tracer` (no deps)
into a fresh virtual environment that borrows this environment's numpy/torch/triton, and runs a
jitted function on both backends there, and `tritonflow bench` on one workload from the installed
package. Needs the package index (as CI's install step does).
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent('''
    import os
    import sys
    import numpy as np

    import importlib.metadata
    import importlib.util

    # The top-level names belong to PyPI's packages (HF's `kernels` needs huggingface_hub to import,
    # which --no-deps left out, so its files are checked, not imported).
    for name in ("kernels", "tracer"):
        origin = importlib.util.find_spec(name).origin
        owned = [str(f) for f in importlib.metadata.distribution(name).files]
        assert os.path.relpath(origin, sys.prefix).endswith(f"site-packages/{name}/__init__.py"), origin
        assert f"{name}/__init__.py" in owned, (name, origin)
    import tritonflow as tflow
    import tritonflow.kernels, tritonflow.tracer
    for module in (tflow, tflow.kernels, tflow.tracer):
        assert module.__file__.startswith(sys.prefix), module.__file__

    def f(x, y):
        return (tflow.exp(x) * y + 1.0).sum(dim=0)

    a = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    b = np.full((2, 3), 0.5, dtype=np.float32)
    want = (np.exp(a.astype(np.float64)) * 0.5 + 1.0).sum(axis=0)
    for backend in ("numpy", "triton"):
        fn = tflow.jit(f, backend=backend)
        got = fn(tflow.from_numpy(a), tflow.from_numpy(b)).numpy()
        assert np.allclose(got, want, rtol=1.3e-6, atol=1e-5), (backend, got, want)
    assert fn.cache_info().misses == 1
    assert "kernels" not in sys.modules and "tracer" not in sys.modules, "tritonflow imported a top-level name"
    print("OK")
''')

# `tritonflow bench` from the installed package, in a folder that is no checkout: the workloads come
# from tritonflow.benchmarks inside site-packages and the results land in the current directory.
BENCH_CHILD = textwrap.dedent('''
    import json, os, sys
    import tritonflow.benchmarks.workloads as workloads
    assert workloads.__file__.startswith(sys.prefix), workloads.__file__
    from tritonflow import cli
    assert cli.main(["bench", "--device", "cpu", "--only", "ten_op_call"]) == 0
    written = sorted(os.listdir("."))
    stem = [n for n in written if n.endswith(".json")][0][:-5]
    assert {stem + ".json", stem + ".md", stem + ".png"} <= set(written), written
    payload = json.load(open(stem + ".json"))
    providers = payload["workloads"][0]["providers"]
    liger = providers.pop("liger")  # the GPU peer: on a CPU it says why it did not run
    assert liger["unavailable"] == "Liger-Kernel's kernels run on a GPU; this run is on the CPU", liger
    assert all(e["max_error"] is not None for e in providers.values()), payload
    print("BENCH OK")
''')


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_wheel_installs_beside_pypi_kernels_and_tracer(tmp_path):
    # Build from the tracked files only, so a dirty checkout's build/ or egg-info cannot leak in.
    source = tmp_path / "src"
    files = _run(["git", "ls-files", "-z"], cwd=REPO).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO / name).read_bytes())
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)])
    (wheel,) = wheels.glob("tritonflow-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"tritonflow", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, tops
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("tritonflow/kernels/lowering.py", "tritonflow/kernels/codegen/emit.py",
                   "tritonflow/kernels/templates/matmul.py", "tritonflow/tracer/trace.py"):
        assert module in names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel), "kernels", "tracer"])
    # numpy, sympy, ml_dtypes, torch and triton come from this environment's site-packages, added
    # after the venv's own (its .pth files are not run, so an editable tritonflow there stays out).
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    (site / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRITON_INTERPRET")}
    env["TRITON_INTERPRET"] = "1"
    env["TRITONFLOW_CACHE_DIR"] = str(tmp_path / "cache")
    proc = _run([str(python), "-c", CHILD], env=env, cwd=tmp_path)
    assert proc.stdout.strip().endswith("OK")
    names_in_wheel = set(names)
    assert {"tritonflow/benchmarks/workloads.py", "tritonflow/benchmarks/peers.py"} <= names_in_wheel
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = _run([str(python), "-c", BENCH_CHILD], env=env, cwd=elsewhere)
    assert proc.stdout.strip().endswith("BENCH OK")
