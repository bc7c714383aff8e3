"""Packaging: `import tritonflow` and a jitted function on the numpy backend need only the core
dependencies (numpy, sympy, ml_dtypes). Proven in a subprocess where importing torch or triton fails.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Installed through sitecustomize so it is in place before anything else runs in the child.
BLOCKER = textwrap.dedent('''
    import sys

    class _Block:
        """Make torch and triton (and their submodules) fail to import, as if not installed."""
        blocked = ("torch", "triton")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                raise ImportError(f"No module named {name!r} (blocked by test_packaging)")
            return None

    sys.meta_path.insert(0, _Block())
''')

CHILD = textwrap.dedent('''
    import sys
    import numpy as np

    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the import blocker did not work: torch imported")

    import tritonflow as tflow

    @tflow.jit
    def f(x, y):
        return (tflow.exp(x) * y + 1.0).sum(dim=0)

    a = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    b = np.full((2, 3), 0.5, dtype=np.float32)
    got = f(tflow.from_numpy(a), tflow.from_numpy(b)).numpy()
    want = (np.exp(a.astype(np.float64)) * 0.5 + 1.0).sum(axis=0)
    assert np.allclose(got, want, rtol=1.3e-6, atol=1e-5), (got, want)
    assert f.cache_info().misses == 1
    # Asking for the triton backend says what to install (not to set TRITON_INTERPRET first).
    try:
        tflow.jit(f.fn, backend="triton")(tflow.from_numpy(a), tflow.from_numpy(b))
    except tflow.UnsupportedError as exc:
        assert "pip install 'tritonflow[gpu]'" in str(exc) and "TRITON_INTERPRET" not in str(exc), exc
    else:
        raise SystemExit("backend='triton' ran without triton installed")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "triton"))
    assert not loaded, loaded
    print("OK")
''')


def test_import_and_jit_without_torch_or_triton(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO), env.get("PYTHONPATH", "")])
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stdout.strip().endswith("OK")


def test_blocker_really_blocks(tmp_path):
    """The proof above only means something if the blocker makes `import torch` fail."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", "import triton"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "blocked by test_packaging" in proc.stderr


def test_pyproject_declares_the_layout():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = meta["project"]
    deps = " ".join(project["dependencies"])
    for name in ("numpy", "sympy", "ml_dtypes"):
        assert name in deps
    assert "torch" not in deps and "triton" not in deps, "the core must not depend on the GPU stack"
    extras = project["optional-dependencies"]
    assert any(d.startswith("triton") for d in extras["gpu"]) and any(d.startswith("torch") for d in extras["gpu"])
    dev = " ".join(extras["dev"])
    for name in ("pytest", "hypothesis", "ruff"):
        assert name in dev
    assert "gpu" in dev
    assert meta["project"]["scripts"]["tritonflow"] == "tritonflow.cli:main"
    setuptools = meta["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"tritonflow.kernels": "kernels", "tritonflow.tracer": "tracer",
                                         "tritonflow.benchmarks": "benchmarks"}
    # Every folder of the four trees is a package of the wheel, under the tritonflow name.
    folders = {"tritonflow": REPO / "tritonflow", "tritonflow.kernels": REPO / "kernels",
               "tritonflow.tracer": REPO / "tracer", "tritonflow.benchmarks": REPO / "benchmarks"}
    expected = set()
    for name, root in folders.items():
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root).parts
            expected.add(".".join((name,) + relative))
    assert set(setuptools["packages"]) == expected
    assert all(p == "tritonflow" or p.startswith("tritonflow.") for p in setuptools["packages"])


def test_bench_suites_have_the_run_and_markdown_contract():
    import importlib

    from tritonflow import cli_suites
    for name in cli_suites.SUITES:
        module = importlib.import_module(f"tritonflow.benchmarks.{name}")
        assert callable(module.run) and callable(module.markdown)


def test_source_checkout_runs_without_install(tmp_path):
    """`PYTHONPATH=.` on a machine where nothing is installed (the GPU machines): the checkout's
    kernels/ and tracer/ load as tritonflow.kernels and tritonflow.tracer. `-S` skips site's .pth
    files, so an editable install's finder cannot be what answers."""
    import sysconfig
    child = textwrap.dedent('''
        import sys
        import numpy as np
        import tritonflow as tflow
        import tritonflow.kernels.lowering, tritonflow.tracer.trace
        assert tflow.kernels.__file__ == sys.argv[1] + "/kernels/__init__.py", tflow.kernels.__file__
        assert tflow.tracer.__file__ == sys.argv[1] + "/tracer/__init__.py", tflow.tracer.__file__
        finders = [type(f).__name__ for f in sys.meta_path]
        assert "SourceTreeFinder" in finders and "_EditableFinder" not in finders, finders
        f = tflow.jit(lambda x: (x * 2.0).sum(), backend="triton")
        assert float(f(tflow.ones(5)).numpy()) == 10.0
        assert "kernels" not in sys.modules and "tracer" not in sys.modules
        print("OK")
    ''')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), sysconfig.get_path("purelib")])
    env["TRITON_INTERPRET"] = "1"
    env["TRITONFLOW_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-S", "-c", child, str(REPO)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stdout.strip().endswith("OK")
