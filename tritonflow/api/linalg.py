"""Framework API: matrix products (`@`), with NumPy's 1-D rules done as reshapes around the primitive."""
from __future__ import annotations

from tritonflow.api.convert import promote_operands
from tritonflow.api.shape import reshape
from tritonflow.dispatch import apply
from tritonflow.errors import ShapeError
from tritonflow.ops.linalg import MATMUL
from tritonflow.ops.shapes import fmt
from tritonflow.amp.autocast_mode import autocast_exempt, autocast_to_low


@autocast_to_low
def matmul(a, b):
    (a, b), _ = promote_operands("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least 1 dim, got {fmt(a.shape)} @ {fmt(b.shape)}")
    a_vec, b_vec = a.ndim == 1, b.ndim == 1
    if a_vec:
        a = reshape(a, (1, a.shape[0]))
    if b_vec:
        b = reshape(b, (b.shape[0], 1))
    if a.shape[-1] != b.shape[-2]:
        shown_a = fmt(a.shape[1:]) if a_vec else fmt(a.shape)
        shown_b = fmt(b.shape[:1]) if b_vec else fmt(b.shape)
        raise ShapeError(f"matmul: inner dimensions differ: {shown_a} @ {shown_b}")
    out = apply(MATMUL, [a, b], {})
    if a_vec and b_vec:
        return reshape(out, ())
    if a_vec:
        return reshape(out, tuple(out.shape[:-2]) + (out.shape[-1],))
    if b_vec:
        return reshape(out, tuple(out.shape[:-1]))
    return out


def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"mm: expects 2-D operands, got {fmt(a.shape)} and {fmt(b.shape)}")
    return matmul(a, b)


def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3:
        raise ShapeError(f"bmm: expects 3-D operands, got {fmt(a.shape)} and {fmt(b.shape)}")
    return matmul(a, b)


@autocast_exempt  # PyTorch's autocast promotes dot's operands rather than lowering them
def dot(a, b):
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"dot: expects 1-D operands, got {fmt(a.shape)} and {fmt(b.shape)}")
    return matmul(a, b)
