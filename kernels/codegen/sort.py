"""Lowering stage: code generation for sort kernels (an op-table entry of kind SORT, e.g. argsort).

A program owns XBLOCK rows ([XBLOCK, 1]) and holds each whole row in one block of RBLOCK = 2**LOG_N
lanes (launch-time constants: heuristics.sort_config). The row's values, with their producers
inlined, become integer keys whose signed order is the wanted one (the entry's SortLowering: the
direction; torch's order of floats: -0.0 as 0.0, NaN above +inf), and a bitonic network
(triton_helpers.sort_with_positions) sorts (key, position) pairs, so ties keep their order. The
sorted positions are stored as int64.

Rows longer than heuristics.SORT_MAX (of a static length) are sorted in chunks of SORT_CHUNK, one
program each, into scratch buffers of keys and positions; merge kernels then merge sorted runs
pairwise until one run spans the row, the last writing the positions (plan.SortPass). A dynamic
length longer than one block is refused when launched.
"""
from __future__ import annotations

import sympy

from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen import triton_types as KD
from tritonflow.kernels.codegen.context import GeneratedKernel, row_program_head, symbol_evaluator
from tritonflow.kernels.codegen.emit import Emitter
from tritonflow.kernels.codegen.spaces import make_group_context
from tritonflow.kernels.plan import KernelPlan, Schedule
from tritonflow.ops.registry import OPS

_KEY_TYPES = {"float64": ("tl.int64", 2 ** 63 - 1), "int64": ("tl.int64", 2 ** 63 - 1)}
_NARROW_KEY = ("tl.int32", 2 ** 31 - 1)


def sort_rule(node):
    """The SortLowering of a sort node's entry."""
    return OPS[node.op].sort


def _key_lines(em: Emitter, node, value_text: str, dtype, descending: bool) -> str:
    """Emit the integer key of `value_text`; returns the key's variable name."""
    key_type, largest = _KEY_TYPES.get(dtype.name, _NARROW_KEY)
    key = em.ctx.name_for(node, "_key")
    if dtype.is_floating_point:
        bits = em.ctx.name_for(node, "_bits")
        em.line(f"{bits} = tl.where({value_text} == 0, 0.0, {value_text}).to({key_type}, bitcast=True)"
                f"  # -0.0 sorts as 0.0")
        # Negative floats order backwards as integers: flipping all but the sign bit fixes that.
        em.line(f"{key} = tl.where({bits} < 0, {bits} ^ {largest}, {bits})")
        em.line(f"{key} = tl.where({value_text} != {value_text}, {largest}, {key})  # NaN above +inf")
    else:
        em.line(f"{key} = {value_text}.to({key_type})")
    if descending:
        em.line(f"{key} = ~{key}  # descending: the reversed integer order")
    em.line(f"{key} = tl.where(xmask & rmask, {key}, {largest})  # lanes past the row sort last")
    return key


def generate_sort(sched: Schedule, plan: KernelPlan, layout: dict, wide: bool, name: str) -> GeneratedKernel:
    """The whole row in one block, or (plan.sort_pass set) one chunk of a long row per program,
    stored with its keys into the scratch buffers the merge kernels read."""
    node = plan.members[0]
    x = node.inputs[0]
    chunks = plan.sort_pass
    descending = bool(sort_rule(node).descending(node.attrs))
    ctx, full = make_group_context(sched, KernelPlan(plan.index, plan.kind, plan.shape, plan.rdims), layout, wide)
    outer, inner = ctx.spaces
    head_printer = ix.TritonPrinter()
    em = Emitter(ctx)
    value = em.value(x, full)
    text = value.text if not value.literal else f"tl.full([XBLOCK, RBLOCK], {value.text}, {value.ctype})"
    key = _key_lines(em, node, text, x.dtype, descending)
    positions = ctx.name_for(node, "_positions")
    em.line(f"{positions} = (rindex + 0 * xindex).to(tl.int32)")
    result = ctx.name_for(node)
    em.line(f"{key}, {result} = th.sort_with_positions({key}, {positions}, LOG_N)  # {ctx.describe(node)}")
    if chunks is None:
        offset = ctx.rewrite_offset(ix.linearize(full, node.shape))
        em.line(f"tl.store({ctx.pointer(node)} + {em.index_text(offset)}, "
                f"{result}.to({KD.storage_type(node.dtype)}), mask=xmask & rmask)")
    else:
        # Lane j of a chunk now holds its j-th element: it goes to the chunk's j-th place.
        em.line(f"tl.store({ctx.pointer(chunks.keys_out)} + xindex * rnumel + rindex, {key}, mask=xmask & rmask)")
        em.line(f"tl.store({ctx.pointer(chunks.positions_out)} + xindex * rnumel + rindex, {result}, "
                f"mask=xmask & rmask)")
    head = row_program_head(head_printer, outer.numel, inner.numel, wide)
    start = "tl.program_id(1) * RBLOCK + " if chunks is not None else ""
    head += [f"    rindex = {start}tl.arange(0, RBLOCK)[None, :]", "    rmask = rindex < rnumel"]
    head += ctx.index_prologue(outer, head_printer, em.printer.used, "    ")
    head += ctx.index_prologue(inner, em.printer, em.printer.used, "    ")
    args, params = ctx.signature([em.printer, head_printer], ["XBLOCK", "RBLOCK", "LOG_N"])
    order = "descending" if descending else "ascending"
    what = f"chunks of {chunks.run} of each row" if chunks is not None else "each row"
    source = ctx.render(name, f"stable {order} sort of {what} of {plan.shape} along dim {plan.rdims[0]} "
                              f"(positions)", params, head + em.lines)
    config = {"rnumel": symbol_evaluator(inner.numel), "where": node.loc, "op": node.op}
    writes = [node]
    if chunks is not None:
        config["chunk"] = chunks.run
        writes = [chunks.keys_out, chunks.positions_out]
    return GeneratedKernel(name=name, kind="sort", source=source, node_lines=list(ctx.ir_lines), args=args,
                           constexprs={}, grid=None, numel=symbol_evaluator(outer.numel), config=config,
                           reads=list(ctx.deps.values()), writes=writes)


def generate_sort_merge(sched: Schedule, plan: KernelPlan, layout: dict, wide: bool, name: str) -> GeneratedKernel:
    """One merge pass of a long sort: runs of `run` sorted (key, position) pairs merge pairwise.

    Every element finds its place on its own: its place in its run, plus how many elements of the
    other run of its pair come before it (a binary search). Pairs are distinct (positions differ),
    so the places form a permutation and equal keys keep their order."""
    node = plan.members[0]
    step = plan.sort_pass
    run = step.run
    ctx, full = make_group_context(sched, KernelPlan(plan.index, "sort", plan.shape, plan.rdims), layout, wide)
    outer, inner = ctx.spaces
    head_printer = ix.TritonPrinter()
    em = Emitter(ctx)
    keys_in, positions_in = ctx.pointer(step.keys_in), ctx.pointer(step.positions_in)
    ctx.describe(node)
    lines = [
        "row = xindex * rnumel",
        "mask = xmask & rmask",
        f"key = tl.load({keys_in} + row + rindex, mask=mask, other=0)",
        f"position = tl.load({positions_in} + row + rindex, mask=mask, other=0)",
        f"pair = (rindex // {2 * run}) * {2 * run}  # where this element's pair of runs starts",
        f"left = rindex - pair < {run}",
        f"other = tl.where(left, pair + {run}, pair)  # the other run of the pair",
        f"count = tl.minimum(tl.maximum(rnumel - other, 0), {run})  # its length (a row's last run is short)",
        "low = rindex * 0",
        f"for _ in tl.static_range({run.bit_length()}):",
        "    # count the other run's elements before this one: a binary search over [low, low + count)",
        "    half = count // 2",
        "    live = mask & (count > 0)",
        f"    probe_key = tl.load({keys_in} + row + other + low + half, mask=live, other=0)",
        f"    probe_position = tl.load({positions_in} + row + other + low + half, mask=live, other=0)",
        "    before = live & ((probe_key < key) | ((probe_key == key) & (probe_position < position)))",
        "    low = tl.where(before, low + half + 1, low)",
        "    count = tl.where(before, count - half - 1, tl.where(live, half, count))",
        f"dst = pair + rindex - tl.where(left, pair, pair + {run}) + low",
    ]
    for text in lines:
        em.line(text)
    if step.keys_out is not None:
        em.line(f"tl.store({ctx.pointer(step.keys_out)} + row + dst, key, mask=mask)")
        em.line(f"tl.store({ctx.pointer(step.positions_out)} + row + dst, position, mask=mask)")
    else:
        dim = plan.rdims[0]
        placed = tuple(sympy.Symbol("dst", integer=True, nonnegative=True) if d == dim else i
                       for d, i in enumerate(full))
        offset = ctx.rewrite_offset(ix.linearize(placed, node.shape))
        em.line(f"tl.store({ctx.pointer(node)} + {em.index_text(offset)}, position.to({KD.storage_type(node.dtype)}), "
                f"mask=mask)  # {ctx.describe(node)}")
    head = row_program_head(head_printer, outer.numel, inner.numel, wide)
    head += ["    rindex = tl.program_id(1) * RBLOCK + tl.arange(0, RBLOCK)[None, :]", "    rmask = rindex < rnumel"]
    head += ctx.index_prologue(outer, head_printer, em.printer.used, "    ")
    args, params = ctx.signature([em.printer, head_printer], ["XBLOCK", "RBLOCK"])
    into = "the sorted positions" if step.keys_out is None else f"runs of {2 * run}"
    source = ctx.render(name, f"merge of sorted runs of {run} into {into}, {plan.shape} along dim {plan.rdims[0]}",
                        params, head + em.lines)
    writes = [node] if step.keys_out is None else [step.keys_out, step.positions_out]
    return GeneratedKernel(name=name, kind="sort_merge", source=source, node_lines=list(ctx.ir_lines), args=args,
                           constexprs={}, grid=None, numel=symbol_evaluator(outer.numel),
                           config={"rnumel": symbol_evaluator(inner.numel)},
                           reads=[step.keys_in, step.positions_in], writes=writes)
