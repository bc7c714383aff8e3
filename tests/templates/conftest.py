"""Test setup for kernels/templates: Triton's interpreter on CPU when there is no GPU, a private cache dir.

tests/conftest.py already switches the interpreter on before triton is imported; the cache
directory keeps these tests from reading or writing the user's kernel cache.
"""
import os
import sys

from helpers import private_kernel_cache  # tests/ is on the path (tests/conftest.py)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

_CACHE_DIR, pytest_sessionfinish = private_kernel_cache("tritonflow-templates-test-")
