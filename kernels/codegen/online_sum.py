"""Lowering stage: online (single-pass) sums of exponentials in looped reductions.

softmax, log_softmax, logsumexp and cross-entropy all reduce `sum(exp(a - c))` where `a` is a
full-size value and `c` a row value computed from an earlier reduction (the row max, often
guarded: `where(isinf(m), 0, m)`). Done in stages, a looped kernel (rows too long for registers)
reads the row once for the max and once more for the sum. The online recurrence folds the sum
into the first pass: each lane keeps a running max `M` of `a` and `S = sum(exp(a - M))`, rescaled
by `exp(M_old - M_new)` when the max grows. Once `c` is known (after the loop of the stage that
defines it), `sum(exp(a - c)) = sum over lanes of S * exp(M - c)`.

That identity holds when `c` is finite and no element is +inf. Rows where it may not (c is
+-inf or NaN, or the row holds +inf) are recomputed exactly by a second loop that runs only for
programs that hold such a row, so special values keep the op table's meaning while ordinary rows
pay one pass. Lanes that saw only -inf (or masked elements) contribute 0, like exp(-inf - c).
"""
from __future__ import annotations

from typing import Optional

from tritonflow.kernels.codegen import triton_types as KD
from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen.emit import Emitter, is_inlined
from tritonflow.ir.graph import Node
from tritonflow.ops import elementwise as EW, movement as MV, reduction as RD
from tritonflow.ops.registry import OPS


class OnlineSum:
    """One reduce_sum member computed by the online recurrence."""

    def __init__(self, node: Node, a: Node, c: Node, finish_stage: int) -> None:
        self.node = node
        self.a = a                      # the full-size value inside exp(a - c)
        self.c = c                      # the row value (size 1 along every reduced dim)
        self.finish_stage = finish_stage

    def names(self, ctx) -> tuple:
        """The per-lane running max and sum (fixed names: both loops and the finish use them)."""
        base = ctx.schedule.value_name(self.node)
        ctx.names |= {f"{base}_max", f"{base}_sum"}
        return f"{base}_max", f"{base}_sum"


def _strip_row_broadcast(node: Node, rdims: tuple, ndim: int) -> Optional[Node]:
    """`node` as a row value: expands of a tensor that is size 1 along every reduced dim."""
    while OPS.get(node.op) is MV.EXPAND:
        node = node.inputs[0]
    if node.type.ndim != ndim or any(not ix.is_one(node.shape[d]) for d in rdims):
        return None
    return node


def _reads_members(node: Node, members: set) -> bool:
    """True if computing `node` (through inlined producers) reads a reduction of this kernel."""
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if id(n) in members:
            return True
        if is_inlined(n):
            stack.extend(n.inputs)
    return False


def find_online_sums(plan) -> dict:
    """id(member) -> OnlineSum for each later-stage `reduce_sum(exp(a - c))` member (see above)."""
    members = {id(m) for m in plan.members}
    found = {}
    ndim = len(plan.shape)
    for node in plan.members:
        stage = plan.stages[id(node)]
        if OPS.get(node.op) is not RD.SUM or stage == 0 or not node.dtype.is_floating_point:
            continue
        e = node.inputs[0]
        if OPS.get(e.op) is not EW.EXP or OPS.get(e.inputs[0].op) is not EW.SUB:
            continue
        a, b = e.inputs[0].inputs
        c = _strip_row_broadcast(b, plan.rdims, ndim)
        if c is None or a.type.ndim != ndim or _reads_members(a, members):
            continue
        # The sum can be finished once c is: after the latest stage c reads.
        c_stage = max((plan.stages[id(m)] for m in plan.members if _reads_members(c, {id(m)})), default=-1)
        if c_stage >= stage:
            continue
        found[id(node)] = OnlineSum(node, a, c, max(c_stage, 0))
    return found


def emit_step(em: Emitter, online: OnlineSum, full: tuple, full_mask: str) -> tuple:
    """One block of the recurrence, inside the first loop. Returns (accumulators, acc dtype)."""
    acc_type = KD.compute_type(online.node.dtype)
    running, total = online.names(em.ctx)
    value = em.value(online.a, full)
    text = value.text if not value.literal else f"tl.full([1], {value.text}, {acc_type})"
    if value.ctype != acc_type:
        text = f"{text}.to({acc_type})"
    node = online.node
    a = em.assign(f"tl.where({full_mask}, {text}, (-_INF))", acc_type, node, "_in", shaped=True).text
    grown = em.assign(f"th.maximum({running}, {a})", acc_type, node, "_grown", shaped=True).text
    # exp(M_old - M_new), 1 when the max did not move (also for -inf == -inf and inf == inf).
    scale = em.assign(f"tl.where({running} == {grown}, 1.0, tl.exp({running} - {grown}))", acc_type, node,
                      "_rescale").text
    term = em.assign(f"tl.where({a} == (-_INF), 0.0, tl.exp({a} - {grown}))", acc_type, node, "_term").text
    em.line(f"{total} = {total} * {scale} + {term}  # online {em.ctx.describe(online.node)}")
    em.line(f"{running} = {grown}")
    return (running, "(-_INF)", acc_type), (total, "0", acc_type)


def emit_finish(post: Emitter, online: OnlineSum, full: tuple, full_mask: str, open_scope, close_scope) -> None:
    """After the stage that defines c: combine the lanes; rows with special values go exact.

    `open_scope(indent)` gives a loop-body Emitter; `close_scope(em, indent, start)` its lines."""
    sched = post.ctx.schedule
    acc_type = KD.compute_type(online.node.dtype)
    running, total = online.names(post.ctx)
    node = online.node
    c_index = ix.broadcast_index(full, online.c.shape)
    c = post.value(online.c, c_index)
    c_text = c.text if not c.literal else f"tl.full([XBLOCK, 1], {c.text}, {acc_type})"
    if c.ctype != acc_type:
        c_text = f"({c_text}).to({acc_type})"
    c_row = post.assign(f"tl.broadcast_to({c_text}, [XBLOCK, 1])", acc_type, node, "_shift", shaped=True).text
    lanes = post.assign(f"tl.where({running} == (-_INF), 0.0, {total} * tl.exp({running} - {c_row}))",
                        acc_type, node, "_lanes", shaped=True).text
    name = sched.value_name(node)
    post.ctx.names.add(name)
    post.line(f"{name} = tl.sum({lanes}, 1, keep_dims=True)  # {post.ctx.describe(online.node)}")
    row_max = post.assign(f"tl.reduce({running}, 1, th.maximum, keep_dims=True)", acc_type, node, "_row_max").text
    special = post.assign(f"({c_row} != {c_row}) | (tl.abs({c_row}) == _INF) | ({row_max} == _INF) | "
                          f"({row_max} != {row_max})", "tl.int1", node, "_special", shaped=True).text
    post.line(f"if tl.sum({special}.to(tl.int32)) > 0:")
    exact = post.ctx.unique(f"{total}_exact")
    post.line(f"    {exact} = tl.zeros([XBLOCK, RBLOCK], {acc_type})")
    inner = open_scope("            ")
    with post.ctx.rarely_run():  # only rows holding inf or NaN take this pass (the cost model skips it)
        value = inner.value(online.a, full)
    text = value.text if not value.literal else f"tl.full([1], {value.text}, {acc_type})"
    if value.ctype != acc_type:
        text = f"{text}.to({acc_type})"
    inner.line(f"{exact} += tl.where(({full_mask}) & {special}, tl.exp({text} - {c_row}), 0.0)")
    post.lines.append("        for roffset in range(0, rnumel, RBLOCK):")
    post.lines.extend(close_scope(inner, "            ", "roffset + "))
    post.line(f"    {name} = tl.where({special}, tl.sum({exact}, 1, keep_dims=True), {name})")
