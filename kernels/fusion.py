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
- Scans, matmuls and scatter-adds are kernels of their own that still inline their producers.

Whether a node fits a group is decided by emitting its expression in the group's context (a dry
run): the emitter raises NotFusable when a reduction result would be read off its row.
Kernels only read buffers written by earlier kernels, so kernel i never depends on kernel j >= i.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import sympy

from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen.emit import Emitter, NotFusable, is_trivial_reduction
from tritonflow import dtypes as D
from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.types import TensorType
from tritonflow.ops.registry import OPS, Kind
from tritonflow.target import Target


@dataclass
class KernelPlan:
    """One kernel: what it computes, over which space, and what it stores."""

    index: int
    kind: str                      # pointwise | reduction | scan | matmul | scatter
    shape: tuple                   # iteration shape (reduction/scan: the input's shape)
    rdims: tuple = ()              # reduced (or scanned) dims
    members: list = field(default_factory=list)      # reductions / the anchor node
    stages: dict = field(default_factory=dict)       # id(reduction) -> stage number
    outputs: list = field(default_factory=list)      # (buffer node, value node), full space
    row_outputs: list = field(default_factory=list)  # (buffer node, value node), one per row

    def stored_members(self, schedule: "Schedule") -> list:
        return [m for m in self.members if id(m) in schedule.stored]


class Schedule:
    """The kernels of a graph, in launch order, and the buffers between them."""

    def __init__(self, graph: Graph, target: Target) -> None:
        self.graph = graph
        self.target = target            # what the kernels are generated for (tritonflow/target.py)
        self.kernels: list[KernelPlan] = []
        self.owner: dict = {}           # id(node) -> kernel index that writes its buffer
        self.stored: dict = {}          # id(node) -> node that needs a global buffer
        self.forced_anchors: set = set()
        self.aliases: dict = {}         # id(node) -> node whose buffer it shares
        self.synthetic_names: dict = {}
        self.output_buffers: dict = {}  # id(graph output) -> node whose buffer holds it
        self._numbers = {id(n): i for i, n in enumerate(graph.nodes)}
        self._lines = self._ir_lines(graph)
        self.size_symbols = self._collect_symbols(graph)
        self._output_names = {}
        for k, out in enumerate(graph.outputs):
            self._output_names.setdefault(id(out), f"out{k}")
        # Inputs are `in_<name>`: a parameter named like an internal buffer (out0, buf3, const1)
        # cannot collide with it, and names that sanitize alike (`a.b`, `a_b`) get a suffix.
        from tritonflow.kernels.codegen.context import safe_name
        self._input_names: dict = {}
        for node in graph.inputs:
            base = name = "in_" + safe_name(node.name)
            suffix = 0
            while name in self._input_names.values():
                suffix += 1
                name = f"{base}_{suffix}"
            self._input_names[id(node)] = name

    # ------------------------------------------------------------ naming

    def number(self, node: Node):
        return self._numbers.get(id(node), self.synthetic_names.get(id(node), "x"))

    def node_line(self, node: Node) -> str:
        if node.op == "input":
            return f"%{node.name}: {node.type} (input)"
        return self._lines.get(id(node), f"%{self.number(node)}: {node.type} = {node.op}")

    def buffer_name(self, node: Node) -> str:
        node = self.aliases.get(id(node), node)
        # Inputs and constants keep their own names even when they are graph outputs too:
        # the output is then a copy (see schedule_graph) that carries the output's name.
        if node.op == "input":
            from tritonflow.kernels.codegen.context import safe_name
            return self._input_names.get(id(node)) or "in_" + safe_name(node.name)
        if node.op == "constant":
            return f"const{self.number(node)}"
        if id(node) in self._output_names:
            return self._output_names[id(node)]
        return f"buf{self.number(node)}"

    def is_forced_anchor(self, node: Node) -> bool:
        return id(node) in self.forced_anchors

    @staticmethod
    def _ir_lines(graph: Graph) -> dict:
        text = str(graph).splitlines()[1:-2]
        return {id(n): line.strip() for n, line in zip(graph.nodes, text)}

    @staticmethod
    def _collect_symbols(graph: Graph) -> set:
        names = set()
        for node in list(graph.inputs) + list(graph.nodes):
            for d in node.shape:
                if isinstance(d, sympy.Expr):
                    names |= {s.name for s in d.free_symbols}
        return names

    # ------------------------------------------------------------ bookkeeping

    def store(self, node: Node) -> None:
        self.stored[id(node)] = node

    def new_kernel(self, kind: str, shape: tuple, rdims: tuple = ()) -> KernelPlan:
        plan = KernelPlan(len(self.kernels), kind, tuple(shape), tuple(rdims))
        self.kernels.append(plan)
        return plan

    def deps_ok(self, deps: dict, plan: KernelPlan) -> bool:
        for node in deps.values():
            owner = self.owner.get(id(node))
            if owner is None or owner >= plan.index:
                return False
        return True

    def accept_deps(self, deps: dict) -> None:
        for node in deps.values():
            self.store(node)


# ---------------------------------------------------------------- group index spaces

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
    from tritonflow.kernels.codegen.context import KernelContext
    ctx = KernelContext(schedule, layout, wide)
    outer, inner, full = reduction_index(plan.shape, plan.rdims)
    ctx.add_space(outer)
    ctx.add_space(inner)
    for member in plan.members:
        ctx.members[id(member)] = member_row_flat(member, full)
    return ctx, full


def make_pointwise_context(schedule: Schedule, shape: tuple, layout: dict, wide: bool):
    from tritonflow.kernels.codegen.context import KernelContext
    ctx = KernelContext(schedule, layout, wide)
    dims = [d for d in range(len(shape)) if not ix.is_one(shape[d])]
    space = ix.Space("x", [shape[d] for d in dims], "xindex", "xmask")
    ctx.add_space(space)
    index = [sympy.Integer(0)] * len(shape)
    for k, d in enumerate(dims):
        index[d] = space.variables[k]
    return ctx, tuple(index)


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
    if ix_shape_equal(node.shape, x_shape):
        index, where = full, "full"
    else:
        keep = tuple(1 if d in plan.rdims else s for d, s in enumerate(x_shape))
        drop = tuple(s for d, s in enumerate(x_shape) if d not in plan.rdims)
        if ix_shape_equal(node.shape, keep) or ix_shape_equal(node.shape, drop):
            index, where = row_index(full, plan.rdims, node.shape, len(x_shape)), "row"
        else:
            return None
    if not _try(ctx, node, index) or not schedule.deps_ok(ctx.deps, plan):
        return None
    if not ctx.member_refs:
        return None  # nothing ties it to this group: a pointwise kernel is as good
    return ctx, where


def ix_shape_equal(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(sympy.expand(ix.as_expr(x) - ix.as_expr(y)) == 0 for x, y in zip(a, b))


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
        elif kind is Kind.MATMUL:
            from tritonflow.kernels.templates import place_template  # matmul/attention templates
            place_template(sched, node)
        elif node.op == "scatter_add":
            _place_scatter(sched, node)
        elif kind is Kind.OPAQUE:
            from tritonflow.errors import LoweringError
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
    return sched


def _place_reduction(sched: Schedule, node: Node) -> None:
    x = node.inputs[0]
    rdims = tuple(node.attrs["dims"])
    for plan in reversed(sched.kernels):
        if plan.kind != "reduction" or plan.rdims != rdims or not ix_shape_equal(plan.shape, x.shape):
            continue
        if node.op in ("argmax", "argmin") or any(m.op in ("argmax", "argmin") for m in plan.members):
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


def _place_scatter(sched: Schedule, node: Node) -> None:
    """scatter_add = copy base into an accumulator, atomically add src, cast if needed."""
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
        from tritonflow.kernels.templates import try_epilogue  # a matmul/attention epilogue, if it fits
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
            if plan.kind != "pointwise" or not ix_shape_equal(plan.shape, value.shape):
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
