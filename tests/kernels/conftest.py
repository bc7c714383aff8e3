"""Test setup for kernels/: Triton's interpreter on CPU when there is no GPU, a private cache dir."""
import os
import sys

import torch

from helpers import private_kernel_cache  # tests/ is on the path (tests/conftest.py)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

if not torch.cuda.is_available():
    # Must happen before triton is first imported.
    os.environ["TRITON_INTERPRET"] = "1"

_CACHE_DIR, pytest_sessionfinish = private_kernel_cache("tritonflow-kernels-test-")
