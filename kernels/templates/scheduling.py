"""Lowering stage: scheduling for template kernels (matmul, attention) — operands and epilogues.

A template node (op kind MATMUL; the op's `triton` field names the template) is a kernel of its
own. Two rules shape what goes into it:

- Operands are read through their view chain (transpose, permute, reshape, expand, slice) as index
  math, never copied. A producer that computes something (elementwise, gather, creation, pad, cat)
  is *materialized* first: a matmul re-reads each operand tile once per output tile, so
  recomputing an activation inside the K loop would cost N/BLOCK_N times the work, and the K loop
  must stay a plain strided load for the tensor cores to be fed. The materialized copy is placed
  like any pointwise output, so it usually becomes the epilogue of the kernel that produced its
  input (`gelu(x @ w1 + b1) @ w2`: the GELU is the first matmul's epilogue).
- Elementwise consumers of the template's result over its full output space join it as an
  epilogue (bias, activation, residual add, scale, cast): the accumulator never goes to memory
  unless another kernel reads it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kernels.context import KernelContext
from kernels.emit import Emitter, NotFusable
from tritonflow.ir.graph import Node
from tritonflow.ops.registry import OPS, Kind

VIEW_OPS = ("reshape", "permute", "expand", "slice")
EPILOGUE_TEMPLATES = ("matmul", "attention")


@dataclass
class TemplateInfo:
    """What a template plan needs beyond KernelPlan: its template and materialized operands."""

    template: str
    sources: dict = field(default_factory=dict)   # id(producer) -> synthetic node holding its value


def template_name(node: Node) -> str:
    op = OPS[node.op]
    return op.triton or node.op


def is_template(node: Node) -> bool:
    op = OPS.get(node.op)
    return op is not None and op.kind is Kind.MATMUL


def view_base(node: Node) -> Node:
    """The node a chain of pure views reads from."""
    while node.op in VIEW_OPS:
        node = node.inputs[0]
    return node


class TemplateContext(KernelContext):
    """A kernel context that reads materialized producers from their buffers."""

    def __init__(self, schedule, layout: dict, wide: bool, sources: dict) -> None:
        super().__init__(schedule, layout, wide)
        self.sources = sources

    def anchor_value(self, emitter, node: Node, index: tuple, conds: tuple):
        held = self.sources.get(id(node))
        if held is not None:
            self.deps[id(held)] = held
            return self.load_buffer(emitter, held, index, conds)
        return super().anchor_value(emitter, node, index, conds)


def _needs_materializing(node: Node) -> bool:
    if node.op in ("input", "constant"):
        return False
    op = OPS.get(node.op)
    if op is None:
        return False
    if op.kind is Kind.REDUCTION:
        from kernels.emit import is_trivial_reduction
        return is_trivial_reduction(node)
    return op.kind in (Kind.ELEMENTWISE, Kind.MOVEMENT, Kind.GATHER, Kind.CREATION)


def materialize(sched, node: Node) -> Node:
    """A stored copy of `node`'s value, placed as a pointwise output (often another epilogue)."""
    from kernels.schedule import _place_pointwise_output
    held = getattr(sched, "template_materialized", None)
    if held is None:
        held = sched.template_materialized = {}
    found = held.get(id(node))
    if found is not None:
        return found
    copy = Node("expand", (node,), {"shape": node.shape}, node.type, node.loc)
    sched.synthetic_names[id(copy)] = f"{sched.number(node)}_mat"
    _place_pointwise_output(sched, copy, copy)
    sched.forced_anchors.add(id(copy))
    held[id(node)] = copy
    return copy


def place_template(sched, node: Node) -> None:
    """Schedule a template node: materialize computed operands, then one kernel of its own."""
    info = TemplateInfo(template_name(node))
    for inp in node.inputs:
        base = view_base(inp)
        if _needs_materializing(base):
            info.sources[id(base)] = materialize(sched, base)
    plan = sched.new_kernel(info.template, node.shape)
    plan.template = info
    plan.members.append(node)
    for inp in node.inputs:
        sched.accept_deps(_operand_deps(sched, inp, info.sources))
    # The result is stored only if something outside this kernel reads it (a dependency or a
    # graph output); an epilogue reads the accumulator in registers.
    sched.owner[id(node)] = plan.index


def _operand_deps(sched, operand: Node, sources: dict) -> dict:
    """The buffers reading `operand` touches (a dry run of its emission over its own shape)."""
    from kernels import indexing as ix
    import sympy
    ctx = TemplateContext(sched, {}, False, sources)
    shape = operand.shape
    dims = [d for d in range(len(shape)) if not ix.is_one(shape[d])]
    space = ctx.add_space(ix.Space("x", [shape[d] for d in dims], "xindex", "xmask"))
    index = [sympy.Integer(0)] * len(shape)
    for k, d in enumerate(dims):
        index[d] = space.variables[k]
    Emitter(ctx).value(operand, tuple(index))
    return ctx.deps


def epilogue_context(sched, plan, layout: dict, wide: bool):
    """(context, full output index) for a template plan: batch, m and n spaces; the node is `acc`."""
    from kernels import indexing as ix
    import sympy
    node = plan.members[0]
    ctx = TemplateContext(sched, layout, wide, plan.template.sources)
    out_shape = node.shape
    batch_dims = [d for d in out_shape[:-2] if not ix.is_one(d)]
    batch = ctx.add_space(ix.Space("b", batch_dims, "bindex", ""))
    m = ctx.add_space(ix.Space("m", [out_shape[-2]], "offs_m", "mmask"))
    n = ctx.add_space(ix.Space("n", [out_shape[-1]], "offs_n", "nmask"))
    index, it = [], iter(batch.variables)
    for d in out_shape[:-2]:
        index.append(sympy.Integer(0) if ix.is_one(d) else next(it))
    full = tuple(index) + (m.variables[0], n.variables[0])
    ctx.members[id(node)] = ix.linearize(full, out_shape)
    ctx.member_vals[id(node)] = "acc"
    return ctx, full


def try_epilogue(sched, buffer: Node, value: Node) -> bool:
    """Join `value` (a pointwise graph value to store in `buffer`) to a template's epilogue."""
    from kernels.schedule import ix_shape_equal
    for plan in reversed(sched.kernels):
        info = getattr(plan, "template", None)
        if info is None or info.template not in EPILOGUE_TEMPLATES:
            continue
        node = plan.members[0]
        if not ix_shape_equal(value.shape, node.shape):
            continue
        ctx, full = epilogue_context(sched, plan, {}, False)
        if hasattr(ctx, "defining"):
            ctx.defining |= {id(buffer), id(value)}
        try:
            Emitter(ctx).value(value, full)
        except NotFusable:
            continue
        if not ctx.member_refs or not sched.deps_ok(ctx.deps, plan):
            continue
        plan.outputs.append((buffer, value))
        sched.owner[id(buffer)] = plan.index
        sched.accept_deps(ctx.deps)
        return True
    return False
