"""Lowering stage: kernels of their own kind — cumulative sums and scatter-add (matmul and
attention are templates in kernels/templates/).

Each still inlines its producers through the emitter (a transposed or scaled operand is read
through its index expression, never copied).

- scan: one program per XBLOCK rows walks the scanned dim in RBLOCK chunks, carrying the sum.
- scatter: atomically combines `src` (tl.atomic_<the entry's `atomic`>: add, or xchg to write)
  into an accumulator buffer a previous pointwise kernel filled with `base` (see
  fusion._place_scatter).
"""
from __future__ import annotations

import sympy

from tritonflow.kernels.codegen import triton_types as KD
from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen.pointwise import flat_kernel_source, store_text
from tritonflow.kernels.codegen.context import GeneratedKernel, row_program_head, symbol_evaluator
from tritonflow.kernels.codegen.emit import Emitter, Val
from tritonflow.kernels.codegen.spaces import make_group_context, make_pointwise_context
from tritonflow.kernels.plan import KernelPlan, Schedule
from tritonflow.ops.registry import OPS


def generate_scan(sched: Schedule, plan: KernelPlan, layout: dict, wide: bool, name: str) -> GeneratedKernel:
    node = plan.members[0]
    ctx, full = make_group_context(sched, KernelPlan(plan.index, plan.kind, plan.shape, plan.rdims),
                                   layout, wide)
    outer, inner = ctx.spaces
    head_printer = ix.TritonPrinter()
    ctype = KD.compute_type(node.dtype)
    em = Emitter(ctx, "        ")
    value = em.value(node.inputs[0], full)
    text = value.text if not value.literal else f"tl.full([XBLOCK, RBLOCK], {value.text}, {ctype})"
    masked = em.assign(f"tl.where(xmask & rmask, {text}, 0).to({ctype})", ctype, node, "_in", shaped=True)
    scanned, carry = ctx.name_for(node), ctx.name_for(node, "_carry")
    em.line(f"{scanned} = {carry} + tl.cumsum({masked.text}, 1)  # {ctx.describe(node)}")
    offset = ctx.rewrite_offset(ix.linearize(full, node.shape))
    offset_text = em.index_text(offset)
    if not sympy.sympify(offset).free_symbols:
        # Every dim is size 1: a scalar pointer cannot take the [XBLOCK, RBLOCK] block stored to it.
        offset_text += " + 0 * (xindex + rindex)"
    em.line(f"tl.store({ctx.pointer(node)} + {offset_text}, "
            f"{scanned}.to({KD.storage_type(node.dtype)}), mask=xmask & rmask)")
    em.line(f"{carry} = {carry} + tl.sum({masked.text}, 1, keep_dims=True)")
    loop = ["        rindex = roffset + tl.arange(0, RBLOCK)[None, :]", "        rmask = rindex < rnumel"]
    loop += ctx.index_prologue(inner, em.printer, em.printer.used, "        ")
    head = row_program_head(head_printer, outer.numel, inner.numel, wide)
    head += ctx.index_prologue(outer, head_printer, em.printer.used, "    ")
    head += [f"    {carry} = tl.zeros([XBLOCK, 1], {ctype})", "    for roffset in range(0, rnumel, RBLOCK):"]
    args, params = ctx.signature([em.printer, head_printer], ["XBLOCK", "RBLOCK"])
    source = ctx.render(name, f"cumulative sum of {plan.shape} along dim {plan.rdims[0]}", params,
                        head + loop + em.lines)
    return GeneratedKernel(name=name, kind="scan", source=source, node_lines=list(ctx.ir_lines), args=args,
                           constexprs={}, grid=None, numel=symbol_evaluator(outer.numel),
                           config={"rnumel": symbol_evaluator(inner.numel)}, reads=list(ctx.deps.values()),
                           loads=ctx.loads, writes=[node])


def generate_scatter(sched: Schedule, plan: KernelPlan, layout: dict, wide: bool, name: str) -> GeneratedKernel:
    node = plan.members[0]
    base, index_node, src = node.inputs
    acc, _ = plan.outputs[0]
    dim = node.attrs["dim"]
    ctx, index = make_pointwise_context(sched, src.shape, layout, wide)
    space = ctx.spaces[0]
    em = Emitter(ctx)
    raw = em.value(index_node, index)
    size_text = em.index_text(ix.as_expr(base.shape[dim]))
    pos_text = f"tl.where({raw.text} < 0, {raw.text} + {size_text}, {raw.text})"
    if not raw.shaped:
        # A literal or 0-d index (every element to one place): atomic_add needs a block of pointers.
        pos_text += " + 0 * xindex"
        em.printer.used.add("xindex")
    pos = em.assign(pos_text, raw.ctype, node, "_position")
    value = em.value(src, index)
    target = list(index)
    target[dim] = sympy.Symbol(pos.text, integer=True, nonnegative=True)
    offset = ctx.rewrite_offset(ix.linearize(tuple(target), base.shape))
    if not value.shaped and not value.literal:
        # Triton's interpreter reads atomic_add's values as contiguous memory: a broadcast_to
        # view (stride 0) added garbage past the first lane. Arithmetic makes a real block.
        value = Val(f"({value.text} + tl.zeros([XBLOCK], {value.ctype}))", value.ctype, shaped=True)
    text = store_text(value, acc, "[XBLOCK]")
    atomic, pointer = OPS[node.op].atomic, ctx.pointer(acc)
    if atomic == "xchg" and acc.dtype.is_floating_point:
        # An exchange moves bits: done on integers of the same width, which every target supports
        # (Triton's interpreter exchanges no floats).
        bits = "tl.int64" if acc.dtype.itemsize == 8 else "tl.int32"
        pointer = f"{pointer}.to(tl.pointer_type({bits}))"
        text = f"{text}.to({bits}, bitcast=True)"
    em.line(f"tl.atomic_{atomic}({pointer} + {em.index_text(offset)}, {text}, mask=xmask)"
            f"  # {ctx.describe(node)}")
    args, source = flat_kernel_source(ctx, em, wide, name,
                                      f"scatter-add of {src.shape} into {base.shape} along dim {dim}")
    return GeneratedKernel(name=name, kind="scatter", source=source, node_lines=list(ctx.ir_lines), args=args,
                           constexprs={}, grid=None, numel=symbol_evaluator(space.numel), config={},
                           reads=list(ctx.deps.values()), loads=ctx.loads, writes=[acc])
