"""Framework API: sort, argsort, topk, kthvalue — one argsort primitive, values gathered through it.

Every order here is stable: equal values keep their input order, ascending or descending, and
NaN sorts above +inf (torch's `stable=True` order; `stable=False` gives the same order, which torch
also allows). topk picks the first k of that order, so among tied values it keeps the earliest
ones (torch leaves that choice unspecified). Values are gathered at the sorted positions, so
their gradient flows back to the positions they came from.
"""
from __future__ import annotations

from tritonflow.api.convert import is_tensor
from tritonflow.api.elementwise import _tensor_arg
from tritonflow.api.reduction import ValuesIndices
from tritonflow.api.shape import gather, narrow, squeeze
from tritonflow.dispatch import apply
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.ops import sorting as S
from tritonflow.ops.shapes import normalize_dim


def _sort_dim(op: str, x, dim) -> int:
    return normalize_dim(op, dim, x.ndim)


def argsort(x, dim: int = -1, descending: bool = False, stable: bool = False):
    """The positions that sort `x` along `dim` (int64), stable whatever `stable` says."""
    x = _tensor_arg(x, "argsort")
    d = _sort_dim("argsort", x, dim)
    return apply(S.ARGSORT, [x], {"dim": d, "descending": bool(descending)})


def sort(x, dim: int = -1, descending: bool = False, stable: bool = False, *, axis=None):
    """(values, indices) of `x` sorted along `dim`, as torch.sort; see the module docstring for order."""
    if axis is not None:
        dim = axis
    x = _tensor_arg(x, "sort")
    order = argsort(x, dim, descending, stable)
    if x.ndim == 0:
        return ValuesIndices((x, order))
    return ValuesIndices((gather(x, dim, order), order))


def msort(x):
    """`x` sorted along its first dim."""
    return sort(x, 0).values


def _check_k(op: str, x, k, d: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        if is_tensor(k) and k.ndim == 0 and k.dtype.is_integer and k._node is None:
            k = int(k.item())
        else:
            raise DTypeError(f"{op}: k must be an int, got {type(k).__name__}")
    size = x.shape[d] if x.ndim else 1
    if isinstance(size, int) and not 0 <= k <= size:
        raise ShapeError(f"{op}: k ({k}) is out of range for dim {d} of size {size} (shape {tuple(x.shape)})")
    return k


def topk(x, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """(values, indices) of the k largest (smallest with largest=False) elements along `dim`, in
    order; among tied values the earliest positions are taken."""
    x = _tensor_arg(x, "topk")
    d = _sort_dim("topk", x, dim)
    k = _check_k("topk", x, k, d)
    order = argsort(x, d, descending=largest)
    if x.ndim == 0:
        return ValuesIndices((x, order))
    picked = narrow(order, d, 0, k)
    return ValuesIndices((gather(x, d, picked), picked))


def kthvalue(x, k: int, dim: int = -1, keepdim: bool = False):
    """(value, index) of the k-th smallest element along `dim` (k counts from 1); among tied values
    the earliest position."""
    x = _tensor_arg(x, "kthvalue")
    d = _sort_dim("kthvalue", x, dim)
    k = _check_k("kthvalue", x, k, d)
    if k == 0:
        raise ShapeError(f"kthvalue: k must be at least 1, got 0 (shape {tuple(x.shape)})")
    if x.ndim == 0:
        return ValuesIndices((x, argsort(x)))
    position = narrow(argsort(x, d), d, k - 1, 1)
    values = gather(x, d, position)
    if keepdim:
        return ValuesIndices((values, position))
    return ValuesIndices((squeeze(values, d), squeeze(position, d)))

