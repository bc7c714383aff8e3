"""Framework stage: `tritonflow.amp.GradScaler` — dynamic loss scaling for float16 training.

torch.amp.GradScaler's algorithm, defaults and call order, so a training loop ports unchanged:

    scaler.scale(loss).backward()      # loss * scale: small float16 gradients stay representable
    scaler.unscale_(optimizer)         # optional: gradients / scale, e.g. before clip_grad_norm_
    scaler.step(optimizer)             # unscale_ if not done; skip the step if any gradient is inf/NaN
    scaler.update()                    # the next scale

The rules (torch's `_amp_update_scale_`): a step with an inf or NaN gradient is skipped, and the
scale is multiplied by `backoff_factor` (0.5) and the count of good steps reset; after
`growth_interval` (2000) good steps in a row the scale is multiplied by `growth_factor` (2.0),
unless that overflows float32. The scale starts at `init_scale` (2**16) and is a float32 value,
so every product rounds as torch's does. Gradients are unscaled by multiplying with the float32
reciprocal of the scale (computed in float64), in float32 for half gradients (float64 for
float64 ones), and checked for inf/NaN before the multiplication.

The scale lives in a 0-d float32 tensor that `scale()` multiplies by, updated in place: a jitted
function that scales its loss reads the current value at every call. Products are taken in
float32 (float64 for float64 tensors) and rounded to the tensor's dtype, as torch's kernels do:
a float16 loss of shape (1,) and value 1.0 times 2**16 is inf, one of 1e-3 is 65.56 (a 0-d half
loss gives a float32 product, as torch's type promotion of two 0-d tensors does). Finding an inf reads one bool from the device per optimizer
step, as torch does. Unlike torch, a scaler for "cuda" stays enabled on a machine without CUDA:
nothing in it depends on the device.

Misuse raises GradScalerError (a RuntimeError) with torch's message: unscale_ twice or after
step, step twice before update, update with no step, a closure passed to step. float16
gradients raise DTypeError ("Attempting to unscale FP16 gradients.": keep float32 master weights).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.autograd import no_grad
from tritonflow.errors import DTypeError, ShapeError, TritonflowError
from tritonflow.jit_function import jit

READY, UNSCALED, STEPPED = "ready", "unscaled", "stepped"
HALF = (D.float16, D.bfloat16)


class GradScalerError(TritonflowError, RuntimeError):
    """GradScaler's methods called out of order (the messages are torch's)."""


def _times(x, factor):
    """x * factor (a 0-d float32 tensor) computed in float32, or float64 for float64 x, and
    rounded to x's dtype."""
    wide = D.float64 if x.dtype is D.float64 else D.float32
    return T.cast(T.cast(x, wide) * T.cast(factor, wide), x.dtype)


def _unscale(grads: list, inv_scale):
    """(each gradient times `inv_scale`; whether any gradient held an inf or NaN), in one graph."""
    found = None
    for g in grads:
        bad = T.logical_not(T.all(T.isfinite(g)))
        found = bad if found is None else T.logical_or(found, bad)
    return [_times(g, inv_scale) for g in grads], found


_unscale_jitted = jit(_unscale)


class GradScaler:
    """Dynamic loss scaling (module docstring); arguments and defaults are torch.amp.GradScaler's."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        if str(device).split(":")[0] not in ("cpu", "cuda"):
            raise ShapeError(f"GradScaler: device must be 'cpu' or 'cuda', got {device!r}")
        self._device = str(device)
        self._enabled = bool(enabled)
        if self._enabled:
            if not growth_factor > 1.0:
                raise ShapeError(f"GradScaler: the growth factor must be > 1.0, got {growth_factor}")
            if not backoff_factor < 1.0:
                raise ShapeError(f"GradScaler: the backoff factor must be < 1.0, got {backoff_factor}")
            if int(growth_interval) != growth_interval or growth_interval < 1:
                raise ShapeError(f"GradScaler: growth_interval must be a positive int, got {growth_interval!r}")
        self._init_scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._init_growth_tracker = 0
        self._scale = None              # 0-d float32 tensor, made by the first scale()
        self._growth_tracker = None     # good steps in a row (an int once scale() ran)
        self._per_optimizer: dict = {}  # id(optimizer) -> {"stage", "found_inf"}

    # ---------------------------------------------------------------- scaling the loss

    def scale(self, outputs):
        """`outputs` (a tensor, or nested lists/tuples/iterables of tensors) times the scale."""
        if not self._enabled:
            return outputs
        if T.is_tensor(outputs):
            if outputs.ndim == 0 and outputs.dtype in HALF:
                outputs = T.cast(outputs, D.float32)   # torch: a 0-d half times the 0-d scale is float32
            return _times(outputs, self._scale_on(outputs.device))
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if isinstance(outputs, Iterable) and not isinstance(outputs, (str, bytes, dict)):
            return map(self.scale, outputs)
        raise DTypeError(f"GradScaler.scale: outputs must be a Tensor or an iterable of Tensors, got "
                         f"{type(outputs).__name__}")

    def _scale_on(self, device: str):
        if self._scale is None:
            self._scale = T.full((), self._init_scale, dtype=D.float32, device=device)
            self._growth_tracker = self._init_growth_tracker
        return self._scale if self._scale.device == device else T.to(self._scale, device)

    def _check_scaled(self, funcname: str) -> None:
        if self._scale is None:
            raise GradScalerError(f"Attempted {funcname} but _scale is None.  This may indicate your script did not "
                                  f"use scaler.scale(loss or outputs) earlier in the iteration.")

    def _state_of(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": READY, "found_inf": None})

    # ---------------------------------------------------------------- the gradients

    def unscale_(self, optimizer) -> None:
        """Divide the optimizer's gradients by the scale (once per step), noting any inf/NaN."""
        if not self._enabled:
            return
        self._check_scaled("unscale_")
        state = self._state_of(optimizer)
        if state["stage"] == UNSCALED:
            raise GradScalerError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] == STEPPED:
            raise GradScalerError("unscale_() is being called after step().")
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        for p in params:
            if p.grad.dtype is D.float16:
                raise DTypeError("Attempting to unscale FP16 gradients.")
        if params:  # none: no check is recorded, and step() says so (as torch's does)
            inv = T.tensor(self._inv_scale(), dtype=D.float32, device=params[0].grad.device)
            with no_grad():
                unscaled, any_bad = _unscale_jitted([p.grad for p in params], inv)
                for p, g in zip(params, unscaled):
                    p.grad.copy_(g)
            state["found_inf"] = bool(any_bad.item())
        state["stage"] = UNSCALED

    def _inv_scale(self) -> float:
        return float(np.float32(1.0 / np.float64(self.get_scale())))

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step(*args, **kwargs) unless a gradient is inf/NaN; returns what it returns (or None)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise GradScalerError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scaled("step")
        state = self._state_of(optimizer)
        if state["stage"] == STEPPED:
            raise GradScalerError("step() has already been called since the last update().")
        if state["stage"] == READY:
            self.unscale_(optimizer)
        if state["found_inf"] is None:
            raise GradScalerError("No inf checks were recorded for this optimizer.")
        result = None
        if not state["found_inf"]:
            result = optimizer.step(*args, **kwargs)
        state["stage"] = STEPPED
        return result

    def update(self, new_scale=None) -> None:
        """The next scale: `new_scale` if given, else the backoff/growth rule (module docstring)."""
        if not self._enabled:
            return
        self._check_scaled("update")
        if new_scale is not None:
            if T.is_tensor(new_scale):
                if new_scale.numel() != 1 or new_scale.requires_grad:
                    raise ShapeError("GradScaler.update: new_scale should be a float or a 1-element tensor with "
                                     "requires_grad=False.")
                new_scale = new_scale.item()
            self._set_scale(float(np.float32(new_scale)))
        else:
            found = [s["found_inf"] for s in self._per_optimizer.values() if s["found_inf"] is not None]
            if not found:
                raise GradScalerError("No inf checks were recorded prior to update.")
            self._apply_rule(any(found))
        self._per_optimizer = {}

    def _apply_rule(self, found_inf: bool) -> None:
        scale = np.float32(self.get_scale())
        if found_inf:
            self._set_scale(float(scale * np.float32(self._backoff_factor)))
            self._growth_tracker = 0
            return
        successful = self._growth_tracker + 1
        if successful == self._growth_interval:
            with np.errstate(over="ignore"):
                grown = scale * np.float32(self._growth_factor)
            if np.isfinite(grown):   # never grow past float32 range to inf
                self._set_scale(float(grown))
            self._growth_tracker = 0
        else:
            self._growth_tracker = successful

    def _set_scale(self, value: float) -> None:
        with no_grad():
            self._scale.fill_(value)

    # ---------------------------------------------------------------- state

    def get_scale(self) -> float:
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = int(new_interval)

    def _get_growth_tracker(self) -> int:
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else self._growth_tracker

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        """torch's five entries (an empty dict when disabled); take it after update()."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise GradScalerError("The source state dict is empty, possibly because it was saved from a disabled "
                                  "instance of GradScaler.")
        missing = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"} - set(state_dict)
        if missing:
            raise GradScalerError(f"GradScaler.load_state_dict: the state dict lacks {sorted(missing)}")
        self._init_scale = float(state_dict["scale"])
        if self._scale is not None:
            self._set_scale(self._init_scale)
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._growth_tracker is not None:
            self._growth_tracker = self._init_growth_tracker

    def __repr__(self) -> str:
        return (f"GradScaler(device={self._device!r}, scale={self.get_scale()}, growth_factor={self._growth_factor}, "
                f"backoff_factor={self._backoff_factor}, growth_interval={self._growth_interval}, "
                f"enabled={self._enabled})")
