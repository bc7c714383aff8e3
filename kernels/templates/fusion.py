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

import sympy

from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen.context import KernelContext
from tritonflow.kernels.codegen.emit import Emitter, NotFusable, is_inlined, is_trivial_reduction
from tritonflow.kernels.plan import TemplateInfo
from tritonflow.ir.graph import Node
from tritonflow.ops.registry import OPS, Kind

EPILOGUE_TEMPLATES = ("matmul",)


def template_name(node: Node) -> str:
    op = OPS[node.op]
    return op.triton or node.op


def is_template(node: Node) -> bool:
    op = OPS.get(node.op)
    return op is not None and op.kind is Kind.MATMUL


def view_base(node: Node) -> Node:
    """The node a chain of pure views reads from."""
    while ix.is_plain_view(node):
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


def is_input_cast(node: Node) -> bool:
    """A float-to-float cast of (views of) a graph input — autocast's cast of a weight. A matmul
    reads such an operand from the input and converts each tile as it loads it, so the cast needs
    no kernel of its own (kernels/templates/matmul.py)."""
    if node.op != "cast" or not node.dtype.is_floating_point:
        return False
    source = node.inputs[0]
    return source.dtype.is_floating_point and view_base(source).op == "input"


def _needs_materializing(node: Node) -> bool:
    if node.op in ("input", "constant"):
        return False
    op = OPS.get(node.op)
    if op is None:
        return False
    if op.kind is Kind.REDUCTION:
        return is_trivial_reduction(node)
    return op.kind in (Kind.ELEMENTWISE, Kind.MOVEMENT, Kind.GATHER, Kind.CREATION)


def materialize(sched, node: Node, place_output) -> Node:
    """A stored copy of `node`'s value, placed as a pointwise output (often another epilogue)."""
    held = sched.template_materialized
    found = held.get(id(node))
    if found is not None:
        return found
    copy = Node("expand", (node,), {"shape": node.shape}, node.type, node.loc)
    sched.synthetic_names[id(copy)] = f"{sched.number(node)}_mat"
    place_output(sched, copy, copy)
    sched.forced_anchors.add(id(copy))
    held[id(node)] = copy
    return copy


def place_template(sched, node: Node, place_output) -> None:
    """Schedule a template node: materialize computed operands, then one kernel of its own.

    `place_output(sched, buffer, value)` is the scheduler's placement of a pointwise output: each
    materialized operand goes where the scheduler puts any stored value."""
    info = TemplateInfo(template_name(node))
    if info.template == "attention_lse" and _join_forward(sched, node):
        return
    if info.template == "matmul":
        for inp in node.inputs:
            base = view_base(inp)
            if _needs_materializing(base) and not is_input_cast(base):
                info.sources[id(base)] = materialize(sched, base, place_output)
    else:
        _prepare_attention_operands(sched, node, info, place_output)
    plan = sched.new_kernel(info.template, node.shape)
    plan.template = info
    plan.members.append(node)
    for inp in node.inputs:
        sched.accept_deps(_operand_deps(sched, inp, info.sources))
    # The result is stored only if something outside this kernel reads it (a dependency or a
    # graph output); a matmul epilogue reads the accumulator in registers.
    sched.owner[id(node)] = plan.index
    if info.template != "matmul":
        sched.store(node)


def _join_forward(sched, node: Node) -> bool:
    """A row log-sum-exp over the same scores as an attention forward kernel is written by it.

    A training step's forward graph holds both (the backward needs the log-sum-exp): this saves
    a second pass over q @ k^T.
    """
    for plan in sched.kernels:
        info = getattr(plan, "template", None)
        if info is None or info.template != "attention" or len(plan.members) != 1:
            continue
        fwd = plan.members[0]
        roles = attention_roles(fwd)
        mine = attention_roles(node)
        same_inputs = roles["q"] is mine["q"] and roles["k"] is mine["k"] and roles.get("mask") is mine.get("mask")
        same_attrs = all(fwd.attrs.get(a) == node.attrs.get(a) for a in ("scale", "is_causal", "mask"))
        if same_inputs and same_attrs:
            plan.members.append(node)
            sched.owner[id(node)] = plan.index
            sched.store(node)
            return True
    return False


# ---------------------------------------------------------------- attention operands

ATTENTION_LEADING = {"attention": ("q", "k", "v"), "attention_lse": ("q", "k"),
                     "attention_delta": ("q", "k", "v", "g"),
                     "attention_dq": ("q", "k", "v", "g", "stats"),
                     "attention_dkv": ("q", "k", "v", "g", "stats")}


def attention_roles(node: Node) -> dict:
    """The inputs of an attention-family node by role: q, k, v, g, stats, mask, seed, offset."""
    names = ATTENTION_LEADING[template_name(node)]
    roles = dict(zip(names, node.inputs[:len(names)]))
    rest = list(node.inputs[len(names):])
    if node.attrs.get("mask", "none") != "none":
        roles["mask"] = rest.pop(0)
    if node.attrs.get("dropout_p", 0.0) > 0 and rest:
        roles["seed"], roles["offset"] = rest[0], rest[1]
    return roles


ROW = sympy.Symbol("ROW", integer=True, nonnegative=True)
COL = sympy.Symbol("COL", integer=True, nonnegative=True)


def operand_index(node: Node, role: str, batch_index: tuple, rows, cols) -> tuple:
    """The index of an operand in terms of the batch variables, ROW and COL (None: 1-D rows)."""
    if cols is None:
        return ix.expand_index(batch_index + (ROW,), node.shape)
    return ix.expand_index(batch_index + (ROW, COL), node.shape)


def strided_form(ctx, node: Node, index: tuple, row_size, col_size):
    """(buffer, batch offset, row stride, column stride) if `node` at `index` is a strided view."""
    ctx.ranges.add(ROW, row_size)
    if col_size is not None:
        ctx.ranges.add(COL, col_size)
    while id(node) not in ctx.sources and ix.is_plain_view(node):
        index = ix.through_view(node, index, ctx.ranges)
        node = node.inputs[0]
    buffer = buffer_of(ctx, node)
    if buffer is None:
        return None
    offset = sympy.expand(sum((i * s for i, s in zip(index, ctx.strides(buffer)) if i != 0), sympy.Integer(0)))
    found = ix.linear_coeffs(offset, [ROW, COL])
    if found is None:
        return None
    coeffs, rest = found
    if {ROW, COL} & sympy.sympify(rest).free_symbols:
        return None
    for stride in (coeffs[ROW], coeffs[COL]):
        if not all(s.name in ctx.external_symbols for s in stride.free_symbols):
            return None
    if buffer.op not in ("input", "constant"):
        ctx.deps[id(buffer)] = buffer
    return buffer, rest, coeffs[ROW], coeffs[COL]


def buffer_of(ctx, base: Node):
    """The buffer node holding `base`'s value, or None if it must be computed (no buffer)."""
    held = ctx.sources.get(id(base))
    if held is not None:
        return held
    if base.op == "input":
        return base
    if base.op == "constant":
        return base if base.attrs["value"].size > 1 else None
    if is_inlined(base) and not ctx.schedule.is_forced_anchor(base):
        return None
    return base


def attention_batch(node: Node) -> tuple:
    return node.shape[:-1] if template_name(node) == "attention_lse" else node.shape[:-2]


def operand_bounds(node: Node, role: str, operand: Node) -> tuple:
    """(row size, column size or None) of an operand's ROW/COL variables."""
    roles = attention_roles(node)
    q, k = roles["q"], roles["k"]
    if role in ("q", "g"):
        return q.shape[-2], operand.shape[-1]
    if role in ("k", "v"):
        return k.shape[-2], operand.shape[-1]
    if role == "mask":
        return q.shape[-2], k.shape[-2]
    if role == "stats":  # [..., L, 3]: delta, the row max and 1 / z per query row
        return q.shape[-2], operand.shape[-1]
    return q.shape[-2], None


def _prepare_attention_operands(sched, node: Node, info: TemplateInfo, place_output) -> None:
    """Materialize computed producers, then any operand that is still not a strided view."""
    for role, operand in attention_roles(node).items():
        if role in ("seed", "offset"):
            continue  # 0-d scalars: computed inline
        base = view_base(operand)
        if _needs_materializing(base):
            info.sources[id(base)] = materialize(sched, base, place_output)
        batch = attention_batch(node)
        ctx = TemplateContext(sched, {}, False, info.sources)
        space = ctx.add_space(ix.Space("b", [d for d in batch if not ix.is_one(d)], "bindex", ""))
        it = iter(space.variables)
        batch_index = tuple(sympy.Integer(0) if ix.is_one(d) else next(it) for d in batch)
        rows, cols = operand_bounds(node, role, operand)
        index = operand_index(operand, role, batch_index, rows, cols)
        if strided_form(ctx, operand, index, rows, cols) is None:
            info.sources[id(operand)] = materialize(sched, operand, place_output)


def _operand_deps(sched, operand: Node, sources: dict) -> dict:
    """The buffers reading `operand` touches (a dry run of its emission over its own shape)."""
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
    for plan in reversed(sched.kernels):
        info = getattr(plan, "template", None)
        if info is None or info.template not in EPILOGUE_TEMPLATES:
            continue
        node = plan.members[0]
        if not ix.shape_equal(value.shape, node.shape):
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
