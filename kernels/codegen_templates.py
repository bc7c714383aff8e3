"""Lowering stage: kernels of their own kind — cumulative sums, a fallback matmul, scatter-add.

Each still inlines its producers through the emitter (a transposed or scaled operand is read
through its index expression, never copied).

- scan: one program per XBLOCK rows walks the scanned dim in RBLOCK chunks, carrying the sum.
- matmul: a plain tiled `tl.dot` kernel (one output tile per program, batch in grid axis 2).
  The epilogue-fusing template is the matmul issue's; this keeps every primitive lowerable.
- scatter: atomically adds `src` into an accumulator buffer a previous pointwise kernel filled
  with `base` (see schedule._place_scatter).
"""
from __future__ import annotations

import sympy

from kernels import dtypes as KD
from kernels import indexing as ix
from kernels.codegen_pointwise import store_text
from kernels.context import GeneratedKernel, symbol_evaluator
from kernels.emit import Emitter
from kernels.schedule import (KernelPlan, Schedule, make_group_context, make_pointwise_context)


def generate_scan(sched: Schedule, plan: KernelPlan, layout: dict, wide: bool, name: str) -> GeneratedKernel:
    node = plan.members[0]
    ctx, full = make_group_context(sched, KernelPlan(plan.index, plan.kind, plan.shape, plan.rdims),
                                   layout, wide)
    outer, inner = ctx.spaces
    head_printer = ix.TritonPrinter()
    ctype = KD.compute_type(node.dtype)
    program = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    em = Emitter(ctx, "        ")
    value = em.value(node.inputs[0], full)
    text = value.text if not value.literal else f"tl.full([XBLOCK, RBLOCK], {value.text}, {ctype})"
    masked = em.assign(f"tl.where(xmask & rmask, {text}, 0).to({ctype})", ctype, shaped=True)
    em.line(f"tmp_scan = carry + tl.cumsum({masked.text}, 1)  # {ctx.describe(node)}")
    offset = ctx.rewrite_offset(ix.linearize(full, node.shape))
    offset_text = em.index_text(offset)
    if not sympy.sympify(offset).free_symbols:
        # Every dim is size 1: a scalar pointer cannot take the [XBLOCK, RBLOCK] block stored to it.
        offset_text += " + 0 * (xindex + rindex)"
    em.line(f"tl.store({ctx.pointer(node)} + {offset_text}, "
            f"tmp_scan.to({KD.storage_type(node.dtype)}), mask=xmask & rmask)")
    em.line(f"carry = carry + tl.sum({masked.text}, 1, keep_dims=True)")
    loop = ["        rindex = roffset + tl.arange(0, RBLOCK)[None, :]", "        rmask = rindex < rnumel"]
    loop += ctx.index_prologue(inner, em.printer, em.printer.used, "        ")
    head = [
        f"    xnumel = {head_printer(outer.numel)}",
        f"    rnumel = {head_printer(inner.numel)}",
        f"    xoffset = {program} * XBLOCK",
        "    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]",
        "    xmask = xindex < xnumel",
    ]
    head += ctx.index_prologue(outer, head_printer, em.printer.used, "    ")
    head += [f"    carry = tl.zeros([XBLOCK, 1], {ctype})", "    for roffset in range(0, rnumel, RBLOCK):"]
    args, params = ctx.signature([em.printer, head_printer], ["XBLOCK", "RBLOCK"])
    source = ctx.render(name, f"cumulative sum of {plan.shape} along dim {plan.rdims[0]}", params,
                        head + loop + em.lines)
    return GeneratedKernel(name=name, kind="scan", source=source, node_lines=list(ctx.ir_lines), args=args,
                           constexprs={}, grid=None, numel=symbol_evaluator(outer.numel),
                           config={"rnumel": symbol_evaluator(inner.numel)}, reads=list(ctx.deps.values()),
                           writes=[node])


def generate_matmul(sched: Schedule, plan: KernelPlan, layout: dict, wide: bool, name: str) -> GeneratedKernel:
    from kernels.context import KernelContext
    node = plan.members[0]
    a, b = node.inputs
    out_shape = node.shape
    batch_shape = out_shape[:-2]
    m_size, n_size, k_size = out_shape[-2], out_shape[-1], a.shape[-1]
    ctx = KernelContext(sched, layout, wide)
    batch = ctx.add_space(ix.Space("b", [d for d in batch_shape if not ix.is_one(d)], "bindex", ""))
    m = ctx.add_space(ix.Space("m", [m_size], "offs_m", "mmask"))
    n = ctx.add_space(ix.Space("n", [n_size], "offs_n", "nmask"))
    ka = ctx.add_space(ix.Space("ka", [k_size], "offs_ka", "kamask"))
    kb = ctx.add_space(ix.Space("kb", [k_size], "offs_kb", "kbmask"))
    batch_index, it = [], iter(batch.variables)
    for d in batch_shape:
        batch_index.append(sympy.Integer(0) if ix.is_one(d) else next(it))
    batch_index = tuple(batch_index)
    m0, n0, ka0, kb0 = m.variables[0], n.variables[0], ka.variables[0], kb.variables[0]
    a_index = ix.expand_index(batch_index, a.shape[:-2]) + (m0, ka0)
    b_index = ix.expand_index(batch_index, b.shape[:-2]) + (kb0, n0)
    ctype = KD.compute_type(node.dtype)
    use_dot = node.dtype.name in ("float16", "bfloat16", "float32")
    acc_type = "tl.float32" if use_dot else ctype
    em = Emitter(ctx, "        ")
    av = em.value(a, a_index)
    bv = em.value(b, b_index)
    at = em.assign(f"tl.where(mmask & kamask, tl.broadcast_to({av.text}, [BLOCK_M, BLOCK_K]), 0)", av.ctype)
    bt = em.assign(f"tl.where(kbmask & nmask, tl.broadcast_to({bv.text}, [BLOCK_K, BLOCK_N]), 0)", bv.ctype)
    if use_dot:
        st = KD.storage_type(node.dtype)
        from kernels.heuristics import interpreted
        if interpreted() and node.dtype.name == "bfloat16":
            st = "tl.float32"  # the interpreter's dot has no bfloat16 (NumPy lacks it); values are exact
        em.line(f"acc += tl.dot({at.text}.to({st}), {bt.text}.to({st}), input_precision=\"ieee\")"
                f"  # {ctx.describe(node)}")
    else:
        em.line(f"acc += tl.sum({at.text}[:, :, None] * {bt.text}[None, :, :], 1)  # {ctx.describe(node)}")
    head_printer = ix.TritonPrinter()
    store = Emitter(ctx, "    ")
    offset = ctx.rewrite_offset(ix.linearize(batch_index + (m0, n0), out_shape))
    store.line(f"tl.store({ctx.pointer(node)} + {store.index_text(offset)}, "
               f"acc.to({KD.storage_type(node.dtype)}), mask=mmask & nmask)")
    used = em.printer.used | store.printer.used
    head = [
        "    pid_m = tl.program_id(0)",
        "    pid_n = tl.program_id(1)",
        "    bindex = tl.program_id(2)" + (".to(tl.int64)" if wide else ""),
        f"    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
        f"    mmask = offs_m < {head_printer(m.numel)}",
        f"    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]",
        f"    nmask = offs_n < {head_printer(n.numel)}",
    ]
    for space in (batch, m, n):
        head += ctx.index_prologue(space, head_printer, used, "    ")
    head += [f"    acc = tl.zeros([BLOCK_M, BLOCK_N], {acc_type})",
             f"    for k0 in range(0, {head_printer(ka.numel)}, BLOCK_K):",
             "        offs_ka = k0 + tl.arange(0, BLOCK_K)[None, :]",
             f"        kamask = offs_ka < {head_printer(ka.numel)}",
             "        offs_kb = k0 + tl.arange(0, BLOCK_K)[:, None]",
             f"        kbmask = offs_kb < {head_printer(ka.numel)}"]
    for space in (ka, kb):
        head += ctx.index_prologue(space, head_printer, used, "        ")
    args, params = ctx.signature([em.printer, head_printer, store.printer],
                                 ["BLOCK_M", "BLOCK_N", "BLOCK_K"])
    source = ctx.render(name, f"fallback tiled matmul {a.shape} @ {b.shape}", params, head + em.lines + store.lines)
    out_numel = symbol_evaluator(ix.product(out_shape))
    return GeneratedKernel(
        name=name, kind="matmul", source=source, node_lines=list(ctx.ir_lines), args=args, constexprs={},
        grid=None, numel=out_numel,
        config={"mnkb": (symbol_evaluator(m_size), symbol_evaluator(n_size), symbol_evaluator(k_size),
                         symbol_evaluator(ix.product(batch_shape))), "dtype": node.dtype.name},
        reads=list(ctx.deps.values()), writes=[node])


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
    pos = em.assign(pos_text, raw.ctype)
    value = em.value(src, index)
    target = list(index)
    target[dim] = sympy.Symbol(pos.text, integer=True, nonnegative=True)
    offset = ctx.rewrite_offset(ix.linearize(tuple(target), base.shape))
    text = store_text(value, acc, "[XBLOCK]")
    em.line(f"tl.atomic_add({ctx.pointer(acc)} + {em.index_text(offset)}, {text}, mask=xmask)"
            f"  # {ctx.describe(node)}")
    head_printer = ix.TritonPrinter()
    program = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    head = [f"    xnumel = {head_printer(space.numel)}", f"    xoffset = {program} * XBLOCK",
            "    xindex = xoffset + tl.arange(0, XBLOCK)", "    xmask = xindex < xnumel"]
    head += ctx.index_prologue(space, head_printer, em.printer.used, "    ")
    args, params = ctx.signature([em.printer, head_printer], ["XBLOCK"])
    source = ctx.render(name, f"scatter-add of {src.shape} into {base.shape} along dim {dim}", params, head + em.lines)
    return GeneratedKernel(name=name, kind="scatter", source=source, node_lines=list(ctx.ir_lines), args=args,
                           constexprs={}, grid=None, numel=symbol_evaluator(space.numel), config={},
                           reads=list(ctx.deps.values()), writes=[acc])
