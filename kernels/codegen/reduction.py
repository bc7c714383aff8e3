"""Lowering stage: code generation for reduction groups (softmax, layer_norm, sums over any axes).

Layout: a program owns XBLOCK rows (`xindex`, shape [XBLOCK, 1]) and walks the reduced
elements in blocks of RBLOCK (`rindex`, shape [1, RBLOCK]). Members run in stages (a member
reading another's row value comes one stage later). Two variants:

- persistent: the whole row fits one block; every stage and the epilogue share one straight
  region, so the input is loaded once and intermediates stay in registers;
- looped: one loop over the row per stage (accumulating per lane, reducing at the end), and one
  more loop for full-size epilogue outputs: a two-pass softmax, a three-pass layer_norm.

Row values (reduction results, row-level epilogues) have shape [XBLOCK, 1] and are stored with
`xmask`; full-size epilogue outputs are stored with `xmask & rmask`.
"""
from __future__ import annotations

from tritonflow.kernels.codegen import triton_types as KD
from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen.online_sum import emit_finish as emit_online_finish
from tritonflow.kernels.codegen.online_sum import emit_step as emit_online_step
from tritonflow.kernels.codegen.online_sum import find_online_sums
from tritonflow.kernels.codegen.pointwise import offset_text, store_text
from tritonflow.kernels.codegen.context import GeneratedKernel, row_program_head, symbol_evaluator
from tritonflow.kernels.codegen.emit import Emitter, Val
from tritonflow.kernels.fusion import KernelPlan, Schedule, make_group_context, row_index

REDUCE_KIND = {"reduce_sum": "sum", "reduce_prod": "prod", "reduce_max": "max", "reduce_min": "min",
               "argmax": "argmax", "argmin": "argmin"}
COMBINE = {"sum": "th.add_combine", "prod": "th.mul_combine", "max": "th.max_combine",
           "min": "th.min_combine", "argmax": "th.argmax_combine", "argmin": "th.argmin_combine"}
BIG_INDEX = str(2 ** 62)


def _reduce_input(em: Emitter, node, value: Val, full_mask: str) -> tuple:
    """(masked value text, accumulation ctype) for one member's per-element input."""
    kind = REDUCE_KIND[node.op]
    x = node.inputs[0]
    if kind in ("sum", "prod"):
        acc_type = KD.compute_type(node.dtype)
    elif x.dtype.is_bool:
        acc_type = "tl.int8"
    else:
        acc_type = value.ctype
    text = value.text
    if value.literal:
        text = f"tl.full([1], {text}, {acc_type})"
    elif value.ctype != acc_type:
        text = f"{text}.to({acc_type})"
    fill = KD.neutral(kind, node.dtype if kind in ("sum", "prod") else x.dtype)
    masked = em.assign(f"tl.where({full_mask}, {text}, {fill})", acc_type, shaped=True)
    return masked.text, acc_type, fill


def _finish(em: Emitter, node, result: str, acc_type: str) -> str:
    """Bring a reduced value to the member's compute dtype."""
    name = f"red{em.ctx.schedule.number(node)}"
    target = KD.compute_type(node.dtype)
    if node.inputs[0].dtype.is_bool and node.op in ("reduce_max", "reduce_min"):
        result = f"{result} != 0"
    elif acc_type != target:
        result = f"{result}.to({target})"
    em.line(f"{name} = {result}  # {em.ctx.describe(node)}")
    return name


def generate_reduction(sched: Schedule, plan: KernelPlan, layout: dict, wide: bool, name: str,
                       persistent: bool) -> GeneratedKernel:
    ctx, full = make_group_context(sched, plan, layout, wide)
    # Outputs this kernel computes (a materialized matmul operand is a forced anchor elsewhere).
    ctx.defining |= {id(value) for _, value in plan.outputs + plan.row_outputs}
    outer, inner = ctx.spaces
    head_printer = ix.TritonPrinter()
    head = row_program_head(head_printer, outer.numel, inner.numel, wide)
    r_lines = ["rindex = {start}tl.arange(0, RBLOCK)[None, :]", "rmask = rindex < rnumel"]
    printers = [head_printer]
    body: list[str] = []
    full_mask = "xmask & rmask"
    stages = sorted(set(plan.stages.values()))

    def open_scope(indent: str) -> Emitter:
        em = Emitter(ctx, indent)
        printers.append(em.printer)
        return em

    def close_scope(em: Emitter, indent: str, start: str) -> list:
        lines = [indent + r_lines[0].format(start=start), indent + r_lines[1]]
        lines += ctx.index_prologue(inner, em.printer, em.printer.used, indent)
        return lines + em.lines

    if persistent:
        em = open_scope("    ")
        for stage in stages:
            for node in [m for m in plan.members if plan.stages[id(m)] == stage]:
                _persistent_member(em, node, full, full_mask)
        _epilogue(em, sched, plan, full, full_mask)
        body += close_scope(em, "    ", "")
    else:
        online = find_online_sums(plan)  # sums of exp(a - c) folded into the first pass
        for stage in stages:
            members = [m for m in plan.members if plan.stages[id(m)] == stage and id(m) not in online]
            post = open_scope("    ")
            if members or (stage == stages[0] and online):
                em = open_scope("        ")
                accs = []
                for node in members:
                    accs.append(_looped_member(em, node, full, full_mask))
                pre = []
                for node, acc_names, acc_type, fill in accs:
                    for acc in acc_names:
                        init = BIG_INDEX if acc.endswith("_index") else fill
                        dtype = "tl.int64" if acc.endswith("_index") else acc_type
                        pre.append(f"    {acc} = tl.full([XBLOCK, RBLOCK], {init}, {dtype})")
                if stage == stages[0]:
                    for item in online.values():
                        for acc, init, dtype in emit_online_step(em, item, full, full_mask):
                            pre.append(f"    {acc} = tl.full([XBLOCK, RBLOCK], {init}, {dtype})")
                body += pre
                body.append("    for roffset in range(0, rnumel, RBLOCK):")
                body += close_scope(em, "        ", "roffset + ")
                for node, acc_names, acc_type, fill in accs:
                    kind = REDUCE_KIND[node.op]
                    if kind in ("argmax", "argmin"):
                        post.line(f"_, {acc_names[1]} = tl.reduce(({acc_names[0]}, {acc_names[1]}), 1, "
                                  f"{COMBINE[kind]}, keep_dims=True)")
                        _finish(post, node, acc_names[1], "tl.int64")
                    else:
                        _finish(post, node, f"tl.reduce({acc_names[0]}, 1, {COMBINE[kind]}, keep_dims=True)",
                                acc_type)
            for item in online.values():
                if item.finish_stage == stage:
                    emit_online_finish(post, item, full, full_mask, open_scope, close_scope)
            body += post.lines
        if plan.outputs:
            em = open_scope("        ")
            _full_outputs(em, sched, plan, full, full_mask)
            body.append("    for roffset in range(0, rnumel, RBLOCK):")
            body += close_scope(em, "        ", "roffset + ")
        em = open_scope("    ")
        _row_outputs(em, sched, plan, full)
        body += em.lines

    used = set()
    for p in printers:
        used |= p.used
    head += ctx.index_prologue(outer, head_printer, used, "    ")
    args, params = ctx.signature(printers, ["XBLOCK", "RBLOCK"])
    variant = "persistent" if persistent else "looped"
    summary = f"{variant} reduction of {plan.shape} over dims {plan.rdims}"
    source = ctx.render(name, summary, params, head + body)
    writes = [b for b, _ in plan.outputs + plan.row_outputs] + plan.stored_members(sched)
    return GeneratedKernel(
        name=name, kind="reduction", source=source, node_lines=list(ctx.ir_lines), args=args,
        constexprs={}, grid=None, numel=symbol_evaluator(outer.numel),
        config={"rnumel": symbol_evaluator(inner.numel), "persistent": persistent,
                # Column reductions (innermost dim kept) want many columns per program.
                "rows_contiguous": (len(plan.shape) - 1) in plan.rdims},
        reads=list(ctx.deps.values()), loads=ctx.loads, writes=writes,
    )


def _persistent_member(em: Emitter, node, full, full_mask: str) -> None:
    value = em.value(node.inputs[0], full)
    masked, acc_type, fill = _reduce_input(em, node, value, full_mask)
    kind = REDUCE_KIND[node.op]
    if kind in ("argmax", "argmin"):
        index = em.assign("tl.broadcast_to(rindex, [XBLOCK, RBLOCK]).to(tl.int64)", "tl.int64", shaped=True)
        em.line(f"_, {index.text} = tl.reduce(({masked}, {index.text}), 1, {COMBINE[kind]}, keep_dims=True)")
        _finish(em, node, index.text, "tl.int64")
        return
    if kind == "sum":
        result = f"tl.sum({masked}, 1, keep_dims=True)"
    else:
        result = f"tl.reduce({masked}, 1, {COMBINE[kind]}, keep_dims=True)"
    _finish(em, node, result, acc_type)


def _looped_member(em: Emitter, node, full, full_mask: str) -> tuple:
    value = em.value(node.inputs[0], full)
    masked, acc_type, fill = _reduce_input(em, node, value, full_mask)
    kind = REDUCE_KIND[node.op]
    acc = f"acc{em.ctx.schedule.number(node)}"
    if kind in ("argmax", "argmin"):
        em.line(f"{acc}_value, {acc}_index = {COMBINE[kind]}({acc}_value, {acc}_index, {masked}, "
                f"tl.broadcast_to(rindex, [XBLOCK, RBLOCK]).to(tl.int64))")
        return node, [f"{acc}_value", f"{acc}_index"], acc_type, fill
    em.line(f"{acc} = {COMBINE[kind]}({acc}, {masked})")
    return node, [acc], acc_type, fill


def _block_offset_text(em: Emitter, offset) -> str:
    """A full-output store offset that spans the [XBLOCK, RBLOCK] block: a side none of whose
    symbols appear (an empty output's zero-size dim zeroes its stride) is added as `0 * xindex`
    or `0 * rindex`, since tl.store needs its pointer in the mask's shape."""
    text = em.index_text(offset)
    names = {s.name for s in offset.free_symbols}
    for space in em.ctx.spaces:
        own = {v.name for v in space.variables} | {space.flat_name}
        own |= {s.name for s in space.tail_symbols.values()}
        if not names & own:
            text += f" + 0 * {space.flat_name}"
    return text


def _full_outputs(em: Emitter, sched: Schedule, plan: KernelPlan, full, full_mask: str) -> None:
    for buffer, value in plan.outputs:
        v = em.value(value, full)
        offset = em.ctx.rewrite_offset(ix.linearize(full, buffer.shape))
        em.line(f"tl.store({em.ctx.pointer(buffer)} + {_block_offset_text(em, offset)}, "
                f"{store_text(v, buffer, '[XBLOCK, RBLOCK]')}, mask={full_mask})")


def _row_outputs(em: Emitter, sched: Schedule, plan: KernelPlan, full) -> None:
    ndim = len(plan.shape)
    for buffer, value in plan.row_outputs:
        index = row_index(full, plan.rdims, value.shape, ndim)
        v = em.value(value, index)
        offset = em.ctx.rewrite_offset(ix.linearize(index, buffer.shape))
        em.line(f"tl.store({em.ctx.pointer(buffer)} + {offset_text(em, offset)}, "
                f"{store_text(v, buffer, '[XBLOCK, 1]')}, mask=xmask)")
    for member in plan.stored_members(sched):
        index = row_index(full, plan.rdims, member.shape, ndim)
        offset = em.ctx.rewrite_offset(ix.linearize(index, member.shape))
        v = Val(f"red{sched.number(member)}", KD.compute_type(member.dtype), shaped=True)
        em.line(f"tl.store({em.ctx.pointer(member)} + {offset_text(em, offset)}, "
                f"{store_text(v, member, '[XBLOCK, 1]')}, mask=xmask)")


def _epilogue(em: Emitter, sched: Schedule, plan: KernelPlan, full, full_mask: str) -> None:
    _full_outputs(em, sched, plan, full, full_mask)
    _row_outputs(em, sched, plan, full)
