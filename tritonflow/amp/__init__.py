"""tritonflow.amp: mixed precision — `autocast` regions and the `GradScaler` for float16 training.

`tritonflow.autocast` (also `tritonflow.amp.autocast`) is in autocast_mode.py; `GradScaler` in
grad_scaler.py. Both follow torch.amp's names and arguments. The API modules import
autocast_mode for their op policy, so this package loads grad_scaler (which needs the API) only
when `GradScaler` is first asked for.
"""
from tritonflow.amp.autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: F401

__all__ = ["GradScaler", "GradScalerError", "autocast", "get_autocast_dtype", "is_autocast_enabled"]


def __getattr__(name):
    if name in ("GradScaler", "GradScalerError"):
        from tritonflow.amp import grad_scaler
        return getattr(grad_scaler, name)
    raise AttributeError(f"module 'tritonflow.amp' has no attribute {name!r}")
