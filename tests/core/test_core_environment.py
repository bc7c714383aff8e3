"""Environment variables: read in tritonflow/environment.py only, with Triton's flag rule."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tritonflow import environment

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("TRUE", True), ("on", True), ("yes", True),
                                       ("0", False), ("", False), ("off", False), ("false", False), ("2", False)])
def test_flags_follow_tritons_rule(monkeypatch, value, on):
    monkeypatch.setenv("TRITON_INTERPRET", value)
    monkeypatch.setenv("TRITONFLOW_DEBUG", value)
    assert environment.triton_interpret() is on
    assert environment.debug_ir() is on


def test_triton_agrees_on_the_interpret_flag():
    """The rule above is Triton's: its knob reads the same strings the same way."""
    import subprocess
    import sys
    for value, on in (("true", True), ("yes", True), ("2", False), ("off", False)):
        proc = subprocess.run([sys.executable, "-c", "import triton.knobs as k; print(k.runtime.interpret)"],
                              env={"TRITON_INTERPRET": value, "PATH": ""}, capture_output=True, text=True,
                              timeout=120)
        assert proc.stdout.strip() == str(on), (value, proc.stdout, proc.stderr)


@pytest.mark.parametrize("value, mode", [("", None), ("0", None), ("1", "warn"), ("warn", "warn"),
                                         ("raise", "raise"), ("RAISE", "raise"), ("nonsense", None)])
def test_verify_mode(monkeypatch, value, mode):
    monkeypatch.setenv("TRITONFLOW_VERIFY", value)
    assert environment.verify_mode() == mode


def test_log_topics_and_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TRITONFLOW_LOG", "ir, recompiles")
    assert environment.log_enabled("ir") and environment.log_enabled("recompiles")
    assert not environment.log_enabled("kernels")
    monkeypatch.setenv("TRITONFLOW_CACHE_DIR", str(tmp_path))
    assert environment.cache_dir() == str(tmp_path)
    monkeypatch.delenv("TRITONFLOW_CACHE_DIR")
    assert environment.cache_dir().endswith(".cache/tritonflow")


def _environ_reads(path: Path) -> list[int]:
    """Lines of `path` that touch os.environ or os.getenv."""
    tree = ast.parse(path.read_text())
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
            lines.append(node.lineno)
    return lines


def test_no_other_module_reads_the_environment():
    offenders = []
    for folder in ("tritonflow", "kernels", "tracer"):
        for path in (REPO / folder).rglob("*.py"):
            if path.name == "environment.py" and path.parent.name == "tritonflow":
                continue
            offenders += [f"{path.relative_to(REPO)}:{line}" for line in _environ_reads(path)]
    assert not offenders, offenders


def test_every_variable_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    missing = [name for name in environment.VARIABLES if f"`{name}`" not in readme]
    assert not missing, missing
