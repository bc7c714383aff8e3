"""Lowering stage: code generation for pointwise kernels (one or several outputs of one shape).

One program handles XBLOCK consecutive elements of the iteration space; every output is
computed from inlined producers and stored with the explicit mask `xindex < xnumel`.
"""
from __future__ import annotations

from tritonflow.kernels.codegen import triton_types as KD
from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen.context import GeneratedKernel, flat_program_head, symbol_evaluator
from tritonflow.kernels.codegen.emit import Emitter, Val
from tritonflow.kernels.codegen.spaces import make_pointwise_context
from tritonflow.kernels.plan import KernelPlan, Schedule


def store_text(v: Val, buffer, shape_text: str) -> str:
    storage = KD.storage_type(buffer.dtype)
    if v.literal:
        text = f"tl.full({shape_text}, {v.text}, {v.ctype})"
        return text if v.ctype == storage else f"{text}.to({storage})"
    text = v.text
    if not v.shaped and "," in shape_text:
        # A scalar or a one-element [1] block (a load at a constant offset) into a 2-D block:
        # tl.broadcast_to needs equal ranks, arithmetic pads them.
        text = f"({text} + tl.zeros({shape_text}, {v.ctype}))"
    elif not v.shaped:
        text = f"tl.broadcast_to({text}, {shape_text})"
    if v.ctype != storage:
        text = f"{text}.to({storage})"
    return text


def offset_text(em: Emitter, offset) -> str:
    """A store offset; a constant one is widened to the block (a 0-d output still stores a block)."""
    text = em.index_text(offset)
    if not offset.free_symbols:
        text = f"{text} + 0 * xindex" if text != "0" else "0 * xindex"
        em.printer.used.add("xindex")
    return text


def flat_kernel_source(ctx, em: Emitter, wide: bool, name: str, summary: str) -> tuple:
    """(args, module source) of a kernel over one flat space (ctx.spaces[0]) whose body `em` holds."""
    head_printer = ix.TritonPrinter()
    space = ctx.spaces[0]
    head = flat_program_head(head_printer, space.numel, wide)
    head += ctx.index_prologue(space, head_printer, em.printer.used, "    ")
    args, params = ctx.signature([em.printer, head_printer], ["XBLOCK"])
    return args, ctx.render(name, summary, params, head + em.lines)


def generate_pointwise(sched: Schedule, plan: KernelPlan, layout: dict, wide: bool, name: str) -> GeneratedKernel:
    ctx, index = make_pointwise_context(sched, plan.shape, layout, wide)
    space = ctx.spaces[0]
    em = Emitter(ctx)
    ctx.defining |= {id(value) for _, value in plan.outputs}
    for buffer, value in plan.outputs:
        v = em.value(value, index)
        offset = ctx.rewrite_offset(ix.linearize(index, buffer.shape))
        ctx.describe(buffer) if buffer is not value else None
        em.line(f"tl.store({ctx.pointer(buffer)} + {offset_text(em, offset)}, "
                f"{store_text(v, buffer, '[XBLOCK]')}, mask=xmask)")
    outputs = ", ".join(sched.buffer_name(b) for b, _ in plan.outputs)
    args, source = flat_kernel_source(ctx, em, wide, name, f"pointwise over {plan.shape}, writes {outputs}")
    numel = symbol_evaluator(space.numel)
    return GeneratedKernel(
        name=name, kind="pointwise", source=source, node_lines=list(ctx.ir_lines), args=args,
        constexprs={}, grid=None, numel=numel, config={},
        reads=list(ctx.deps.values()), loads=ctx.loads, writes=[b for b, _ in plan.outputs],
    )
