"""Framework stage: `tritonflow.autocast` — mixed precision regions with PyTorch's op policy.

Inside `with tritonflow.autocast("cuda", dtype=tritonflow.bfloat16):` (or a function decorated
with it) each listed op casts its floating point tensor arguments before it runs:

- to the region's low dtype (float16 or bfloat16): matmul, mm, bmm, F.linear, convolution and
  scaled_dot_product_attention, the ops that gain from tensor cores;
- to float32: sum, prod, cumsum, softmax, log_softmax, exp, expm1, log, log1p, log2, pow, rsqrt,
  reciprocal, F.layer_norm, F.rms_norm and the losses (cross_entropy, nll_loss, mse_loss), the
  ops whose range or accumulation half precision would lose.

Every other op runs in the dtypes it is given, with the usual promotion: a float32 residual plus
a bfloat16 matmul result is float32, as in PyTorch. These are PyTorch's CUDA lists
(torch.amp, "Autocast Op Reference"); tritonflow applies them to "cpu" regions as well, where
PyTorch only lowers the matmul family. Only tensors on the region's device are cast; float64
tensors, integers and bool are never cast. An op casts once, at its own boundary: what it calls
inside (layer_norm's mean, softmax's exp) runs without autocast, the way PyTorch's dispatcher
excludes autocast below an autocast kernel. Backward passes run without autocast: the vjp rules
follow the dtypes the forward chose, and gradients reach float32 weights in float32.

The region is thread-local and nests: an inner region replaces the dtype or, with
`enabled=False`, switches autocast off, until it exits. Under `tritonflow.jit` the casts are
traced into the graph like any op (and fused by the lowering), and the region in force at the
call is part of the compiled function's guard key.

Casts are not cached between uses (PyTorch's `cache_enabled` caches weight casts for the length
of a region): eagerly each use casts again, with the same values; under jit common-subexpression
elimination merges repeated casts of one tensor.
"""
from __future__ import annotations

import functools
import threading
from typing import Callable, Optional

from tritonflow import dtypes as D
from tritonflow.errors import DeviceError, DTypeError
from tritonflow.ops.lazy_api import T

DEVICE_TYPES = ("cpu", "cuda")
DEFAULT_DTYPES = {"cpu": D.bfloat16, "cuda": D.float16}  # PyTorch's defaults
LOW_DTYPES = (D.float16, D.bfloat16)

_state = threading.local()


def _regions() -> dict:
    """device type -> the innermost region's (enabled, dtype) for this thread."""
    regions = getattr(_state, "regions", None)
    if regions is None:
        regions = _state.regions = {}
    return regions


def _suspended() -> bool:
    return getattr(_state, "suspended", 0) > 0


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """Whether ops on `device_type` tensors autocast here (False inside a listed op or a backward)."""
    region = _regions().get(device_type)
    return region is not None and region[0] and not _suspended()


def get_autocast_dtype(device_type: str = "cuda"):
    """The low dtype of the innermost `device_type` region (PyTorch's default when there is none)."""
    region = _regions().get(device_type)
    return region[1] if region is not None else DEFAULT_DTYPES[_checked_device(device_type)]


def state_key() -> tuple:
    """What the active regions make ops do: part of a jitted function's guard key."""
    if _suspended():
        return ()
    return tuple(sorted((device, dtype.name) for device, (on, dtype) in _regions().items() if on))


def _checked_device(device_type) -> str:
    name = str(device_type)
    if name.startswith("cuda"):
        return "cuda"
    if name not in DEVICE_TYPES:
        raise DeviceError(f"autocast: device_type must be 'cpu' or 'cuda', got {device_type!r}")
    return name


class autocast:
    """`with autocast(device_type, dtype=None, enabled=True):` or `@autocast(...)` (module docstring).

    dtype defaults to float16 for "cuda" and bfloat16 for "cpu", as in PyTorch.
    """

    def __init__(self, device_type: str, dtype=None, enabled: bool = True, cache_enabled: Optional[bool] = None) -> None:
        self.device_type = _checked_device(device_type)
        self.dtype = DEFAULT_DTYPES[self.device_type] if dtype is None else D.as_dtype(dtype)
        if self.dtype not in LOW_DTYPES:
            raise DTypeError(f"autocast: dtype must be float16 or bfloat16, got {self.dtype.name}")
        if not isinstance(enabled, bool):
            raise DTypeError(f"autocast: enabled must be True or False, got {enabled!r}")
        self.enabled = enabled
        self.cache_enabled = cache_enabled  # accepted for PyTorch's signature; see the module docstring
        self._saved: list = []

    def __enter__(self) -> "autocast":
        regions = _regions()
        self._saved.append(regions.get(self.device_type))
        regions[self.device_type] = (self.enabled, self.dtype)
        return self

    def __exit__(self, *exc) -> None:
        previous = self._saved.pop()
        regions = _regions()
        if previous is None:
            regions.pop(self.device_type, None)
        else:
            regions[self.device_type] = previous

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def in_region(*args, **kwargs):
            with autocast(self.device_type, self.dtype, self.enabled, self.cache_enabled):
                return fn(*args, **kwargs)
        return in_region

    def __repr__(self) -> str:
        return f"autocast({self.device_type!r}, dtype={self.dtype.name}, enabled={self.enabled})"


class suspended:
    """Autocast off for this thread while inside, whatever the regions say (listed ops, backward)."""

    def __enter__(self) -> None:
        _state.suspended = getattr(_state, "suspended", 0) + 1

    def __exit__(self, *exc) -> None:
        _state.suspended -= 1


class restored:
    """The regions `snapshot()` saw, in force while inside (checkpoint's recomputation runs the
    region under the autocast of its forward, though backward itself does not autocast)."""

    def __init__(self, snapshot: tuple) -> None:
        self.snapshot = snapshot

    def __enter__(self) -> None:
        self.saved = (dict(_regions()), getattr(_state, "suspended", 0))
        _state.regions, _state.suspended = dict(self.snapshot[0]), self.snapshot[1]

    def __exit__(self, *exc) -> None:
        _state.regions, _state.suspended = self.saved


def snapshot() -> tuple:
    """This thread's autocast state, for `restored`."""
    return dict(_regions()), getattr(_state, "suspended", 0)


# ---------------------------------------------------------------- the op policy

def _cast_to(value, target_of):
    """`value` cast to `target_of(device)` when it is an eligible tensor (module docstring)."""
    if not T.is_tensor(value) or not value.dtype.is_floating_point or value.dtype is D.float64:
        return value
    if not is_autocast_enabled(value.device):
        return value
    target = target_of(value.device)
    return value if value.dtype is target else T.cast(value, target)


def _policy(target_of) -> Callable:
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def autocast_op(*args, **kwargs):
            if not _regions() or _suspended():
                return fn(*args, **kwargs)
            args = [_cast_to(a, target_of) for a in args]
            kwargs = {k: _cast_to(v, target_of) for k, v in kwargs.items()}
            with suspended():
                return fn(*args, **kwargs)
        autocast_op.__wrapped_autocast__ = fn
        return autocast_op
    return decorate


autocast_to_low = _policy(get_autocast_dtype)
autocast_to_float32 = _policy(lambda device: D.float32)
autocast_to_float32.__doc__ = "Decorator: the op runs in float32 inside an autocast region."
autocast_to_low.__doc__ = "Decorator: the op runs in the region's low dtype inside an autocast region."


def autocast_exempt(fn: Callable) -> Callable:
    """Decorator for an unlisted composite: no casts, and none by the listed ops it calls inside
    (mean over sum, logsumexp over exp and log run in the dtype they are given)."""
    @functools.wraps(fn)
    def exempt(*args, **kwargs):
        if not _regions() or _suspended():
            return fn(*args, **kwargs)
        with suspended():
            return fn(*args, **kwargs)
    return exempt
