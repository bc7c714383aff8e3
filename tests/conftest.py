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


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The backend name a compiled test runs on: "numpy" or "triton" (see module docstring)."""
    return request.param
