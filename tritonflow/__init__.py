"""tritonflow: a small deep-learning framework whose compiler turns Python model code into Triton kernels.

Eager tensors for debugging, `@tritonflow.jit` for speed, and a NumPy interpreter that defines what
every op means. Only NumPy, SymPy and ml_dtypes are needed to import it; triton and torch are
imported lazily by the GPU path.
"""
from tritonflow import _source_layout

_source_layout.install()  # before anything imports tritonflow.tracer or tritonflow.kernels

from tritonflow import dtypes  # noqa: F401  (the public tritonflow.dtypes module)
from tritonflow.dtypes import (bfloat16, bool_, float16, float32, float64, int8, int32, int64,  # noqa: F401
                               finfo, iinfo, promote_types)
from tritonflow.errors import (AutogradError, DeviceError, DTypeError, InvalidValueError, LoweringError,  # noqa: F401
                               ShapeError, TraceError, TritonflowError, TritonflowIndexError, UnsupportedError)
from tritonflow import ops  # noqa: F401  (registers the op table)
from tritonflow.api import *  # noqa: F401,F403
from tritonflow.api import softmax, log_softmax  # noqa: F401
from tritonflow.tensor_class import Tensor  # noqa: F401
from tritonflow.jit_function import jit  # noqa: F401
from tritonflow.matmul_precision import get_matmul_precision, set_matmul_precision  # noqa: F401
from tritonflow.version import __version__  # noqa: F401
from tritonflow.autograd import (enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled,  # noqa: F401
                                 no_grad, set_grad_enabled)
from tritonflow.amp.autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: F401

bool = bool_  # noqa: A001  (tritonflow.bool, as torch.bool)
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001


def __getattr__(name):
    # Heavier pieces load on first use so `import tritonflow` stays light.
    if name == "explain":
        from tritonflow.explain import explain
        # Importing the submodule bound `tritonflow.explain` to the module; the function wins.
        globals()["explain"] = explain
        return explain
    if name == "compile":  # tritonflow.compile(module) lives with nn (it takes an nn.Module)
        from tritonflow.nn.compiled import compile
        globals()["compile"] = compile
        return compile
    if name in ("grad", "value_and_grad"):
        from tritonflow import functional_transforms as _ft
        return getattr(_ft, name)
    if name == "TensorSpec":
        from tritonflow.aot import TensorSpec
        return TensorSpec
    if name in ("nn", "optim", "debug", "fuzz", "onnx", "profiler", "utils", "aot", "target",
                "distributed", "amp"):
        import importlib
        return importlib.import_module(f"tritonflow.{name}")
    if name in ("save", "load"):
        from tritonflow import serialization
        return getattr(serialization, name)
    if name == "profile":
        from tritonflow.profiler import profile
        return profile
    if name == "cache_stats":
        from tritonflow import backends
        return backends.get("triton").cache_stats
    raise AttributeError(f"module 'tritonflow' has no attribute {name!r}")
