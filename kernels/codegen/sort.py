"""Lowering stage: code generation for sort kernels (an op-table entry of kind SORT, e.g. argsort).

A program owns XBLOCK rows ([XBLOCK, 1]) and holds each whole row in one block of RBLOCK = 2**LOG_N
lanes (launch-time constants: heuristics.sort_config). The row's values, with their producers
inlined, become integer keys whose signed order is the wanted one (the entry's SortLowering: the
direction; torch's order of floats: -0.0 as 0.0, NaN above +inf), and a bitonic network
(triton_helpers.sort_with_positions) sorts (key, position) pairs, so ties keep their order. The
sorted positions are stored as int64. Rows longer than heuristics.SORT_MAX are refused when the
graph is scheduled (static lengths) or launched (dynamic ones).
"""
from __future__ import annotations

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
    node = plan.members[0]
    x = node.inputs[0]
    rule = sort_rule(node)
    descending = bool(rule.descending(node.attrs))
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
    offset = ctx.rewrite_offset(ix.linearize(full, node.shape))
    em.line(f"tl.store({ctx.pointer(node)} + {em.index_text(offset)}, {result}.to({KD.storage_type(node.dtype)}), "
            f"mask=xmask & rmask)")
    head = row_program_head(head_printer, outer.numel, inner.numel, wide)
    head += ["    rindex = tl.arange(0, RBLOCK)[None, :]", "    rmask = rindex < rnumel"]
    head += ctx.index_prologue(outer, head_printer, em.printer.used, "    ")
    head += ctx.index_prologue(inner, em.printer, em.printer.used, "    ")
    args, params = ctx.signature([em.printer, head_printer], ["XBLOCK", "RBLOCK", "LOG_N"])
    order = "descending" if descending else "ascending"
    source = ctx.render(name, f"stable {order} sort of {plan.shape} along dim {plan.rdims[0]} (positions)",
                        params, head + em.lines)
    return GeneratedKernel(name=name, kind="sort", source=source, node_lines=list(ctx.ir_lines), args=args,
                           constexprs={}, grid=None, numel=symbol_evaluator(outer.numel),
                           config={"rnumel": symbol_evaluator(inner.numel), "where": node.loc, "op": node.op},
                           reads=list(ctx.deps.values()), writes=[node])
