"""The op table (see registry.py); importing this package registers every primitive."""
from tritonflow.ops import creation, elementwise, linalg, movement, reduction, sorting  # noqa: F401
from tritonflow.ops import attention  # noqa: F401,E402  (fused attention primitives)
from tritonflow.ops import collective  # noqa: F401,E402  (collectives across processes)
from tritonflow.ops.registry import OPS, Kind, OpDef, get, register

__all__ = ["OPS", "Kind", "OpDef", "get", "register"]
