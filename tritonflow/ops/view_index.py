"""The index rules of the view ops: which input element each output element reads.

Framework stage (core): the movement entries (movement.py) carry these rules, and the lowering
composes them into one index expression per load, so views never copy. An index is a tuple of
SymPy expressions, one per dim. Integer division goes through `divide` (floordiv(expr, d) and
modulo(expr, d)), supplied by the caller: the lowering simplifies with its variables' ranges.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import sympy

from tritonflow.ir.types import Dim
from tritonflow.ops.codegen_info import ViewRead

Index = tuple  # one SymPy expression per dim


def as_expr(d: Dim) -> sympy.Expr:
    return sympy.Integer(d) if isinstance(d, int) else d


def is_one(d: Dim) -> bool:
    return isinstance(d, int) and d == 1 or (isinstance(d, sympy.Integer) and int(d) == 1)


def product(dims: Iterable[Dim]) -> sympy.Expr:
    total = sympy.Integer(1)
    for d in dims:
        total = total * as_expr(d)
    return total


def contiguous_strides(shape: Sequence[Dim]) -> list:
    return [product(shape[d + 1:]) for d in range(len(shape))]


def linearize(index: Index, shape: Sequence[Dim]) -> sympy.Expr:
    """The row-major flat position of `index` in a tensor of `shape`."""
    total = sympy.Integer(0)
    for i, stride in zip(index, contiguous_strides(shape)):
        total = total + i * stride
    return sympy.expand(total)


def delinearize(flat: sympy.Expr, shape: Sequence[Dim], divide) -> list:
    """The index of row-major flat position `flat` in a tensor of `shape`."""
    out = []
    for d, (size, stride) in enumerate(zip(shape, contiguous_strides(shape))):
        if is_one(size):
            out.append(sympy.Integer(0))
            continue
        q = divide.floordiv(flat, stride)
        out.append(q if d == 0 else divide.modulo(q, size))
    return out


def _same(a: Dim, b: Dim) -> bool:
    return sympy.expand(as_expr(a) - as_expr(b)) == 0


def reshape_index(out_index: Index, out_shape: Sequence[Dim], in_shape: Sequence[Dim], divide) -> Index:
    """Map an index of the reshaped tensor to an index of its input.

    Dims are matched in groups of equal element count (a merge, a split, or a plain copy), so
    the usual squeeze/unsqueeze/flatten cases never produce a division at all.
    """
    in_index: list = [sympy.Integer(0)] * len(in_shape)
    ins = [d for d in range(len(in_shape)) if not is_one(in_shape[d])]
    outs = [d for d in range(len(out_shape)) if not is_one(out_shape[d])]
    i = j = 0
    while i < len(ins) or j < len(outs):
        gi, gj = [ins[i]] if i < len(ins) else [], [outs[j]] if j < len(outs) else []
        i += len(gi)
        j += len(gj)
        pi, pj = product(in_shape[d] for d in gi), product(out_shape[d] for d in gj)
        while not _same(pi, pj):
            static = pi.is_number and pj.is_number
            if static and pi < pj and i < len(ins) or (not static and i < len(ins) and j >= len(outs)):
                gi.append(ins[i])
                pi = pi * as_expr(in_shape[ins[i]])
                i += 1
            elif j < len(outs) and (static or i >= len(ins)):
                gj.append(outs[j])
                pj = pj * as_expr(out_shape[outs[j]])
                j += 1
            elif not static and i < len(ins) and j < len(outs):
                # Symbolic sizes we cannot compare: take everything that is left as one group.
                gi += ins[i:]
                gj += outs[j:]
                i, j = len(ins), len(outs)
                break
            else:
                break
        flat = linearize(tuple(out_index[d] for d in gj), [out_shape[d] for d in gj])
        parts = delinearize(flat, [in_shape[d] for d in gi], divide)
        for d, p in zip(gi, parts):
            in_index[d] = p
    return tuple(in_index)


def permute_index(out_index: Index, perm: Sequence[int]) -> Index:
    in_index: list = [None] * len(perm)
    for i, p in enumerate(perm):
        in_index[p] = out_index[i]
    return tuple(in_index)


def expand_index(out_index: Index, in_shape: Sequence[Dim]) -> Index:
    """Broadcasting: size-1 dims of the input read position 0; leading output dims are dropped."""
    lead = len(out_index) - len(in_shape)
    return tuple(sympy.Integer(0) if is_one(d) else out_index[lead + k] for k, d in enumerate(in_shape))


def slice_index(out_index: Index, start: Sequence[int], step: Sequence[int]) -> Index:
    return tuple(sympy.expand(s + st * i) for i, s, st in zip(out_index, start, step))


# ---------------------------------------------------------------- the entries' rules

def reshape_reads(node, index: Index, divide) -> list:
    return [ViewRead(0, reshape_index(index, node.shape, node.inputs[0].shape, divide))]


def permute_reads(node, index: Index, divide) -> list:
    return [ViewRead(0, permute_index(index, node.attrs["perm"]))]


def expand_reads(node, index: Index, divide) -> list:
    return [ViewRead(0, expand_index(index, node.inputs[0].shape))]


def slice_reads(node, index: Index, divide) -> list:
    return [ViewRead(0, slice_index(index, node.attrs["start"], node.attrs["step"]))]


def pad_reads(node, index: Index, divide) -> list:
    """Inside the padding: the input at the shifted index; the border takes the fill value."""
    inner, conds = [], []
    for i, (lo, hi), size in zip(index, node.attrs["pads"], node.inputs[0].shape):
        inner.append(i - lo)
        if lo:
            conds.append((i, ">=", sympy.Integer(lo)))
        if hi:
            conds.append((i, "<", as_expr(size) + lo))
    return [ViewRead(0, tuple(inner), tuple(conds))]


def cat_reads(node, index: Index, divide) -> list:
    """One read per non-empty piece: piece k holds positions [start_k, start_k + size_k) of `dim`."""
    dim = node.attrs["dim"]
    position = index[dim]
    reads, start = [], sympy.Integer(0)
    for k, inp in enumerate(node.inputs):
        size = as_expr(inp.shape[dim])
        if size != 0:
            inner = list(index)
            inner[dim] = position - start
            reads.append(ViewRead(k, tuple(inner), ((position, ">=", start), (position, "<", start + size))))
        start = start + size
    return reads
