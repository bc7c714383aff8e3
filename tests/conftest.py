"""Test-suite set-up shared by every test file.

Triton's interpreter (the way the `triton` backend runs kernels on a machine without a GPU) must be
switched on in the environment *before* triton is first imported, so this happens at the very top
of the conftest, before any tritonflow or triton import.

Fixtures:
- `backend`: parametrized over "numpy" (the interpreter, the spec) and "triton" (generated kernels;
  under Triton's interpreter on CPU). A test that takes `backend` runs once per backend. The triton
  variant always runs for real: a broken `kernels` package fails it instead of turning it into an
  expected failure.
"""
from __future__ import annotations

import os


from helpers import HAS_CUDA  # noqa: E402  (decides without importing triton)

if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

BACKENDS = ("numpy", "triton")


def pytest_addoption(parser) -> None:
    parser.addoption("--compile-for", default="", metavar="TARGETS",
                     help="also compile every kernel the tests launch (in Triton's interpreter) for these GPU "
                          "targets, e.g. sm_90 or sm_90,sm_80 (tritonflow/kernels/compile_check.py); a kernel "
                          "that fails to compile fails the run")


def pytest_configure(config) -> None:
    targets = [t.strip() for t in config.getoption("--compile-for").split(",") if t.strip()]
    if targets:
        from tritonflow.kernels.compile_check import CompileCheck
        # A worker per core: compiling takes several times longer than the tests themselves.
        config.compile_check = CompileCheck(targets, jobs=os.cpu_count())
        config.compile_check.start()


def pytest_sessionfinish(session, exitstatus) -> None:
    check = getattr(session.config, "compile_check", None)
    if check is not None:
        check.failures = check.finish(jobs=os.cpu_count())
        if check.failures:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    check = getattr(config, "compile_check", None)
    if check is not None:
        terminalreporter.write_line(check.summary())


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The backend name a compiled test runs on: "numpy" or "triton" (see module docstring)."""
    return request.param
