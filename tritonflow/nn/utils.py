"""tritonflow.nn.utils: gradient clipping by global norm (one compiled graph for all gradients).

Framework stage. `clip_grad_norm_` computes the norm over every gradient and rescales them all
in one jitted function; called inside a jitted training step it is simply inlined.
"""
from __future__ import annotations

import math

import tritonflow.api as T
from tritonflow.tracer import state as trace_state
from tritonflow.autograd import no_grad
from tritonflow.errors import AutogradError, ShapeError
from tritonflow.tensor_class import Tensor


def _total_norm(grads: list, norm_type: float):
    if norm_type == math.inf:
        norms = [T.amax(T.abs(T.cast(g, "float32") if g.dtype.is_low_precision else g)) for g in grads]
        total = norms[0]
        for n in norms[1:]:
            total = T.maximum(total, T.cast(n, total.dtype))
        return total
    parts = []
    for g in grads:
        g32 = T.cast(g, "float32") if g.dtype.is_low_precision else g
        parts.append(T.sum(T.pow(T.abs(g32), norm_type)) if norm_type != 2.0 else T.sum(g32 * g32))
    total = parts[0]
    for p in parts[1:]:
        total = total + T.cast(p, total.dtype)
    return T.pow(total, 1.0 / norm_type) if norm_type != 2.0 else T.sqrt(total)


def _clip(grads: list, max_norm: float, norm_type: float):
    total = _total_norm(grads, norm_type)
    coef = T.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(T.cast(coef, g.dtype))
    return total


_clip_jitted = None


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False):
    """Scale all gradients so their joint `norm_type` norm is at most `max_norm`; return the norm before."""
    global _clip_jitted
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    norm_type = float(norm_type)
    if not grads:
        return T.tensor(0.0)
    if max_norm < 0 or not (norm_type > 0):
        raise ShapeError(f"clip_grad_norm_: max_norm must be >= 0 and norm_type > 0, got {max_norm}, {norm_type}")
    tracing = trace_state.current() is not None
    with no_grad():
        if tracing:
            return _clip(grads, float(max_norm), norm_type)
        if error_if_nonfinite:
            # Check before touching any gradient, so a failure leaves them as they were.
            norm = float(_total_norm(grads, norm_type))
            if not math.isfinite(norm):
                raise AutogradError(f"clip_grad_norm_: the total norm of the gradients is {norm} "
                                    f"(non-finite); set error_if_nonfinite=False to clip anyway")
        if _clip_jitted is None:
            from tritonflow.jit_function import jit
            _clip_jitted = jit(_clip)
        total = _clip_jitted(grads, float(max_norm), norm_type)
    return total


def clip_grad_value_(parameters, clip_value: float) -> None:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    with no_grad():
        for p in parameters:
            if p.grad is not None:
                p.grad.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters):
    return T.cat([T.reshape(p, (-1,)) for p in parameters])
