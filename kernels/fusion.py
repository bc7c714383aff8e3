"""Lowering stage: scheduling — which IR nodes form which kernel (fusion groups).

Rules (DESIGN.md, "Lowering"):
- Elementwise, movement, creation and gather nodes are never kernels of their own: they are
  inlined into every kernel that reads them (recomputed, never stored, unless they are outputs).
- A reduction anchors a reduction group. Later reductions over the same iteration space join the
  group when they read earlier members only "on the row" (softmax's sum reads the max of its own
  row), so they run in stages inside one kernel.
- A graph output that is pointwise over a group's iteration space, or over its rows, joins the
  group as an epilogue (softmax's `e / s`, layer_norm's normalized output, `x.sum(0) / n`).
  Otherwise it joins a pointwise kernel of the same shape (several outputs per kernel: an Adam
  update is one kernel) or starts one.
- Scans, sorts, matmuls and scatters (entries with `atomic`) are kernels of their own that still
  inline their producers.

Whether a node fits a group is decided by emitting its expression in the group's context (a dry
run): the emitter raises NotFusable when a reduction result would be read off its row.
Kernels only read buffers written by earlier kernels, so kernel i never depends on kernel j >= i.
"""
from __future__ import annotations

from typing import Optional

import sympy

from tritonflow.kernels.codegen.emit import Emitter, NotFusable, is_trivial_reduction, is_trivial_sort, reduction_of
from tritonflow.kernels.codegen.spaces import make_group_context, make_pointwise_context, row_index
from tritonflow.kernels.codegen.indexing import shape_equal
from tritonflow.kernels import heuristics
from tritonflow.kernels.plan import KernelPlan, Schedule, SortPass
from tritonflow.kernels.templates.fusion import place_template, try_epilogue
from tritonflow import dtypes as D
from tritonflow.errors import LoweringError
from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.types import TensorType
from tritonflow.ops.registry import OPS, Kind
from tritonflow.target import Target


# ---------------------------------------------------------------- dry runs

def _try(ctx, node: Node, index: tuple):
    emitter = Emitter(ctx)
    try:
        emitter.value(node, index)
    except NotFusable:
        return None
    return ctx


def _try_reduction_member(schedule: Schedule, plan: KernelPlan, node: Node):
    ctx, full = make_group_context(schedule, plan, {}, False)
    if not _try(ctx, node.inputs[0], full):
        return None
    if not schedule.deps_ok(ctx.deps, plan):
        return None
    return ctx


def _try_epilogue(schedule: Schedule, plan: KernelPlan, node: Node) -> Optional[tuple]:
    x_shape = plan.shape
    ctx, full = make_group_context(schedule, plan, {}, False)
    if shape_equal(node.shape, x_shape):
        index, where = full, "full"
    else:
        keep = tuple(1 if d in plan.rdims else s for d, s in enumerate(x_shape))
        drop = tuple(s for d, s in enumerate(x_shape) if d not in plan.rdims)
        if shape_equal(node.shape, keep) or shape_equal(node.shape, drop):
            index, where = row_index(full, plan.rdims, node.shape, len(x_shape)), "row"
        else:
            return None
    if not _try(ctx, node, index) or not schedule.deps_ok(ctx.deps, plan):
        return None
    if not ctx.member_refs:
        return None  # nothing ties it to this group: a pointwise kernel is as good
    return ctx, where


# ---------------------------------------------------------------- the scheduler

def schedule_graph(graph: Graph, target: Target) -> Schedule:
    sched = Schedule(graph, target)
    for node in graph.nodes:
        op = OPS.get(node.op)
        kind = op.kind if op else None
        if kind is Kind.REDUCTION and not is_trivial_reduction(node):
            _place_reduction(sched, node)
        elif kind is Kind.SCAN:
            _place_single(sched, node, "scan", node.inputs[0].shape, (node.attrs["dim"],))
        elif kind is Kind.SORT and not is_trivial_sort(node):
            _place_sort(sched, node)
        elif kind is Kind.MATMUL:
            place_template(sched, node, _place_pointwise_output)  # matmul/attention templates
        elif op is not None and op.atomic:
            _place_scatter(sched, node)
        elif kind is Kind.OPAQUE:
            raise LoweringError(f"no lowering for opaque op {node.op}: {sched.node_line(node)}")
    # Graph outputs that are not anchors are written by pointwise work, placed in output order
    # after every anchor they read (kernels are appended in order, so this keeps dependencies).
    placed = set()
    for out in graph.outputs:
        if id(out) in placed:
            continue
        placed.add(id(out))
        if id(out) in sched.owner:
            sched.store(out)
            continue
        if out.op in ("input", "constant"):
            # A fresh buffer (a copy), so the caller never gets an alias of an argument.
            copy = Node("expand", (out,), {"shape": out.shape}, out.type, out.loc)
            sched.synthetic_names[id(copy)] = f"{sched.buffer_name(out)}_copy"
            sched._output_names[id(copy)] = sched._output_names[id(out)]
            sched.output_buffers[id(out)] = copy
            _place_pointwise_output(sched, copy, copy)
            continue
        _place_pointwise_output(sched, out, out)
    for node in graph.outputs:
        if id(node) in sched.owner:
            sched.store(node)
    _drop_kernels_writing_nothing(sched)
    return sched


def _drop_kernels_writing_nothing(sched: Schedule) -> None:
    """Remove reduction kernels none of whose results is read (their readers folded away, e.g. an
    argmin over a size-1 dim is 0 whatever it reads), and number the rest again."""
    kept, renumber = [], {}
    for plan in sched.kernels:
        if plan.kind == "reduction" and not (plan.outputs or plan.row_outputs or plan.stored_members(sched)):
            for member in plan.members:
                sched.owner.pop(id(member), None)
            continue
        renumber[plan.index] = len(kept)
        plan.index = len(kept)
        kept.append(plan)
    sched.kernels = kept
    sched.owner = {key: renumber[index] for key, index in sched.owner.items()}


def _place_reduction(sched: Schedule, node: Node) -> None:
    x = node.inputs[0]
    rdims = tuple(node.attrs["dims"])
    for plan in reversed(sched.kernels):
        if plan.kind != "reduction" or plan.rdims != rdims or not shape_equal(plan.shape, x.shape):
            continue
        if reduction_of(node).carries_index or any(reduction_of(m).carries_index for m in plan.members):
            continue  # keeps each argmax's index bookkeeping simple: its own kernel
        ctx = _try_reduction_member(sched, plan, node)
        if ctx is None:
            continue
        stage = 1 + max((plan.stages[r] for r in ctx.member_refs), default=-1)
        plan.members.append(node)
        plan.stages[id(node)] = stage
        sched.owner[id(node)] = plan.index
        sched.accept_deps(ctx.deps)
        return
    plan = sched.new_kernel("reduction", x.shape, rdims)
    ctx = _try_reduction_member(sched, plan, node)
    assert ctx is not None, f"a reduction must fit a group of its own: {sched.node_line(node)}"
    plan.members.append(node)
    plan.stages[id(node)] = 0
    sched.owner[id(node)] = plan.index
    sched.accept_deps(ctx.deps)


def _collect_deps(sched: Schedule, node: Node, index_ctx) -> dict:
    ctx, index = index_ctx
    emitter = Emitter(ctx)
    emitter.value(node, index)
    return ctx.deps


def _place_single(sched: Schedule, node: Node, kind: str, shape: tuple, rdims: tuple = ()) -> None:
    plan = sched.new_kernel(kind, shape, rdims)
    plan.members.append(node)
    for inp in node.inputs:
        sched.accept_deps(_collect_deps(sched, inp, make_pointwise_context(sched, inp.shape, {}, False)))
    sched.owner[id(node)] = plan.index
    sched.store(node)


def _place_sort(sched: Schedule, node: Node) -> None:
    """A sort kernel of its own (producers inlined). A row longer than one block, of a static
    length, is sorted in chunks that merge kernels then merge (plan.SortPass); a dynamic length is
    sorted in one block, and refused when launched if it is too long (runtime/launch.py)."""
    dim = OPS[node.op].sort.dim(node.attrs)
    x = node.inputs[0]
    length = x.shape[dim]
    if not isinstance(length, int) or length <= heuristics.SORT_MAX:
        _place_single(sched, node, "sort", x.shape, (dim,))
        return
    rows = sympy.Integer(1)
    for d, size in enumerate(x.shape):
        if d != dim:
            rows = rows * size
    rows = int(rows) if rows.is_number else rows
    key_dtype = D.int64 if x.dtype.itemsize == 8 else D.int32

    def scratch(what: str, dtype) -> Node:
        buffer = Node(node.op, node.inputs, node.attrs, TensorType((rows, length), dtype), node.loc)
        sched.synthetic_names[id(buffer)] = f"{sched.number(node)}_{what}"
        sched.store(buffer)
        return buffer
    keys = [scratch(f"keys{k}", key_dtype) for k in (0, 1)]
    positions = [scratch(f"positions{k}", D.int32) for k in (0, 1)]
    run = heuristics.SORT_CHUNK
    _place_single(sched, node, "sort", x.shape, (dim,))
    chunks = sched.kernels[-1]
    chunks.sort_pass = SortPass(run, keys_out=keys[0], positions_out=positions[0])
    current = 0
    while run < length:
        last = 2 * run >= length
        merge = sched.new_kernel("sort_merge", x.shape, (dim,))
        merge.members.append(node)
        merge.sort_pass = SortPass(run, keys[current], positions[current], None if last else keys[1 - current],
                                   None if last else positions[1 - current])
        sched.owner[id(node)] = merge.index
        current, run = 1 - current, 2 * run


def _place_scatter(sched: Schedule, node: Node) -> None:
    """A scatter (an entry with `atomic`, e.g. scatter_add): copy base into an accumulator,
    combine src in atomically, cast back if the accumulator is wider."""
    base, index, src = node.inputs
    acc_dtype = {"float16": D.float32, "bfloat16": D.float32, "int8": D.int32, "bool": D.int32}.get(
        node.dtype.name, node.dtype)
    acc = Node("cast", (base,), {"dtype": acc_dtype}, TensorType(base.shape, acc_dtype), node.loc)
    sched.synthetic_names[id(acc)] = f"{sched.number(node)}_acc"
    _place_pointwise_output(sched, acc, acc, new=True)
    sched.forced_anchors.add(id(acc))
    plan = sched.new_kernel("scatter", src.shape, (node.attrs["dim"],))
    plan.members.append(node)
    plan.outputs.append((acc, acc))
    for inp in (index, src):
        sched.accept_deps(_collect_deps(sched, inp, make_pointwise_context(sched, inp.shape, {}, False)))
    if acc_dtype is node.dtype:
        sched.aliases[id(node)] = acc
        sched.owner[id(node)] = plan.index
        return
    final = Node("cast", (acc,), {"dtype": node.dtype}, node.type, node.loc)
    cast_plan = sched.new_kernel("pointwise", node.shape)
    cast_plan.outputs.append((node, final))
    sched.accept_deps(_collect_deps(sched, final, make_pointwise_context(sched, node.shape, {}, False)))
    sched.owner[id(node)] = cast_plan.index


def _place_pointwise_output(sched: Schedule, buffer: Node, value: Node, new: bool = False) -> None:
    sched.store(buffer)
    if not new:
        if try_epilogue(sched, buffer, value):
            return
        # An epilogue of the latest reduction group it reads, if it fits there.
        for plan in reversed(sched.kernels):
            if plan.kind != "reduction":
                continue
            found = _try_epilogue(sched, plan, value)
            if found is None:
                continue
            ctx, where = found
            (plan.outputs if where == "full" else plan.row_outputs).append((buffer, value))
            sched.owner[id(buffer)] = plan.index
            sched.accept_deps(ctx.deps)
            return
        for plan in reversed(sched.kernels):
            if plan.kind != "pointwise" or not shape_equal(plan.shape, value.shape):
                continue
            ctx, index = make_pointwise_context(sched, value.shape, {}, False)
            if _try(ctx, value, index) and sched.deps_ok(ctx.deps, plan):
                plan.outputs.append((buffer, value))
                sched.owner[id(buffer)] = plan.index
                sched.accept_deps(ctx.deps)
                return
    plan = sched.new_kernel("pointwise", value.shape)
    ctx, index = make_pointwise_context(sched, value.shape, {}, False)
    Emitter(ctx).value(value, index)
    plan.outputs.append((buffer, value))
    sched.owner[id(buffer)] = plan.index
    sched.accept_deps(ctx.deps)
