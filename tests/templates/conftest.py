"""Test setup for kernels/templates: Triton's interpreter on CPU when there is no GPU, a private cache dir.

tests/conftest.py already switches the interpreter on before triton is imported; the cache
directory keeps these tests from reading or writing the user's kernel cache.
"""
import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

_CACHE_DIR = tempfile.mkdtemp(prefix="tritonflow-templates-test-")
os.environ.setdefault("TRITONFLOW_CACHE_DIR", _CACHE_DIR)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    # A passing run leaves nothing in /tmp; a failing one keeps the generated sources its
    # messages point to. Last of the session's finishers: the --compile-for check (tests/conftest.py)
    # still compiles from these sources when the tests are done, and may fail the run.
    if session.exitstatus == 0:
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)
