"""Lowering stage: the iteration spaces of a kernel and the code generation context over them.

A pointwise kernel iterates one space `x` over its shape; a reduction (or scan) kernel an outer
space `x` over the kept dims and an inner space `r` over the reduced ones. Both the scheduler's
dry runs (kernels/fusion.py) and the kernel generators build their contexts here, so a value
fits a group exactly when it can be generated in it.
"""
from __future__ import annotations

import sympy

from tritonflow.ir.graph import Node
from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen.context import KernelContext
from tritonflow.kernels.plan import KernelPlan, Schedule


def reduction_index(shape: tuple, rdims: tuple) -> tuple:
    """Spaces (outer, inner) and the index of each dim of `shape` in their variables."""
    outer_dims = [d for d in range(len(shape)) if d not in rdims and not ix.is_one(shape[d])]
    inner_dims = [d for d in range(len(shape)) if d in rdims and not ix.is_one(shape[d])]
    outer = ix.Space("x", [shape[d] for d in outer_dims], "xindex", "xmask")
    inner = ix.Space("r", [shape[d] for d in inner_dims], "rindex", "rmask")
    index = [sympy.Integer(0)] * len(shape)
    for k, d in enumerate(outer_dims):
        index[d] = outer.variables[k]
    for k, d in enumerate(inner_dims):
        index[d] = inner.variables[k]
    return outer, inner, tuple(index)


def row_index(full_index: tuple, rdims: tuple, out_shape: tuple, in_ndim: int) -> tuple:
    """The index of a row-shaped value (reduced shape, with or without keepdim)."""
    if len(out_shape) == in_ndim:
        return tuple(sympy.Integer(0) if d in rdims else full_index[d] for d in range(in_ndim))
    return tuple(full_index[d] for d in range(in_ndim) if d not in rdims)


def member_row_flat(node: Node, full_index: tuple) -> sympy.Expr:
    rdims = node.attrs["dims"]
    x = node.inputs[0]
    return ix.linearize(row_index(full_index, rdims, node.shape, x.type.ndim), node.shape)


def make_group_context(schedule: Schedule, plan: KernelPlan, layout: dict, wide: bool):
    """A KernelContext for a reduction group: spaces registered, members known."""
    ctx = KernelContext(schedule, layout, wide)
    outer, inner, full = reduction_index(plan.shape, plan.rdims)
    ctx.add_space(outer)
    ctx.add_space(inner)
    for member in plan.members:
        ctx.members[id(member)] = member_row_flat(member, full)
    return ctx, full


def make_pointwise_context(schedule: Schedule, shape: tuple, layout: dict, wide: bool):
    ctx = KernelContext(schedule, layout, wide)
    dims = [d for d in range(len(shape)) if not ix.is_one(shape[d])]
    space = ix.Space("x", [shape[d] for d in dims], "xindex", "xmask")
    ctx.add_space(space)
    index = [sympy.Integer(0)] * len(shape)
    for k, d in enumerate(dims):
        index[d] = space.variables[k]
    return ctx, tuple(index)
