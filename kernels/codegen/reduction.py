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

What a member computes comes from its op-table entry (ReductionLowering): the combine, written
into the kernel's module as a @triton.jit function, the identity masked lanes take, an optional
direct block reduction (tl.sum), and whether (value, position) pairs are reduced (argmax).
"""
from __future__ import annotations

from tritonflow.kernels.codegen import triton_types as KD
from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen.online_sum import emit_finish as emit_online_finish
from tritonflow.kernels.codegen.online_sum import emit_step as emit_online_step
from tritonflow.kernels.codegen.online_sum import find_online_sums
from tritonflow.kernels.codegen.pointwise import offset_text, store_text
from tritonflow.kernels.codegen.context import GeneratedKernel, row_program_head, symbol_evaluator
from tritonflow.kernels.codegen.emit import Emitter, Val, libdevice_calls, reduction_of
from tritonflow import dtypes as D
from tritonflow.ops.registry import OPS
from tritonflow.kernels.codegen.spaces import make_group_context, row_index
from tritonflow.kernels.plan import KernelPlan, Schedule, safe_name

BIG_INDEX = str(2 ** 62)


def _accumulation(node) -> tuple:
    """(reduced dtype, accumulator dtype) of a member: the values are reduced in the result's dtype
    (the input's for index-carrying reductions); bool accumulates in int8."""
    value_dtype = node.inputs[0].dtype if reduction_of(node).carries_index else node.dtype
    return value_dtype, (D.int8 if value_dtype.is_bool else value_dtype)


def _reduce_input(em: Emitter, node, value: Val, full_mask: str) -> tuple:
    """(masked value text, accumulation ctype, identity literal) for one member's per-element input."""
    value_dtype, acc_dtype = _accumulation(node)
    acc_type = KD.compute_type(acc_dtype)
    text = value.text
    if value.literal:
        text = f"tl.full([1], {text}, {acc_type})"
    elif value.ctype != acc_type:
        text = f"{text}.to({acc_type})"
    fill = KD.literal(KD.round_to(reduction_of(node).identity(value_dtype), acc_dtype), acc_dtype)
    masked = em.assign(f"tl.where({full_mask}, {text}, {fill})", acc_type, node, "_in", shaped=True)
    return masked.text, acc_type, fill


def _finish(em: Emitter, node, result: str, acc_type: str) -> str:
    """Bring a reduced value to the member's compute dtype."""
    name = em.ctx.schedule.value_name(node)  # fixed: this kernel's other values read it by this name
    em.ctx.names.add(name)
    target = KD.compute_type(node.dtype)
    if node.dtype.is_bool:
        result = f"{result} != 0"
    elif acc_type != target:
        result = f"{result}.to({target})"
    em.line(f"{name} = {result}  # {em.ctx.describe(node)}")
    return name


def combine_function(ctx, node) -> str:
    """The name of the member's @triton.jit combine function, written into the kernel's module."""
    op = OPS[node.op]
    red = reduction_of(node)
    name = f"{safe_name(op.name)}_combine"
    combine = libdevice_calls(red.combine, ctx.schedule.target)
    if red.carries_index:
        body = ["    # a wins when preferred, or on a tie (NaN ties NaN) with the lower index",
                f"    preferred = {combine}",
                "    same = (a == b) | ((a != a) & (b != b))",
                "    pick_a = preferred | (same & (a_index < b_index))",
                "    return tl.where(pick_a, a, b), tl.where(pick_a, a_index, b_index)"]
        params = "a, a_index, b, b_index"
    else:
        body, params = [f"    return {combine}"], "a, b"
    ctx.helpers[name] = "\n".join(["@triton.jit", f"def {name}({params}):"] + body)
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
                    _finish(post, node, _reduce_block(post, node, acc_names), acc_type)
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


def _reduce_block(em: Emitter, node, blocks: list) -> str:
    """The row result of reducing `blocks` (the masked values, or (values, positions) for an
    index-carrying reduction) along the reduced axis."""
    red = reduction_of(node)
    if red.carries_index:
        values, positions = blocks
        em.line(f"_, {positions} = tl.reduce(({values}, {positions}), 1, {combine_function(em.ctx, node)}, "
                "keep_dims=True)")
        return positions
    if red.block_reduce:
        return f"{red.block_reduce}({blocks[0]}, 1, keep_dims=True)"
    return f"tl.reduce({blocks[0]}, 1, {combine_function(em.ctx, node)}, keep_dims=True)"


def _persistent_member(em: Emitter, node, full, full_mask: str) -> None:
    value = em.value(node.inputs[0], full)
    masked, acc_type, fill = _reduce_input(em, node, value, full_mask)
    if reduction_of(node).carries_index:
        index = em.assign("tl.broadcast_to(rindex, [XBLOCK, RBLOCK]).to(tl.int64)", "tl.int64", node, "_index",
                          shaped=True)
        _finish(em, node, _reduce_block(em, node, [masked, index.text]), "tl.int64")
        return
    _finish(em, node, _reduce_block(em, node, [masked]), acc_type)


def _looped_member(em: Emitter, node, full, full_mask: str) -> tuple:
    value = em.value(node.inputs[0], full)
    masked, acc_type, fill = _reduce_input(em, node, value, full_mask)
    combine = combine_function(em.ctx, node)
    acc = em.ctx.name_for(node, "_acc")
    if reduction_of(node).carries_index:
        em.line(f"{acc}, {acc}_index = {combine}({acc}, {acc}_index, {masked}, "
                f"tl.broadcast_to(rindex, [XBLOCK, RBLOCK]).to(tl.int64))")
        em.ctx.names.add(f"{acc}_index")
        return node, [acc, f"{acc}_index"], acc_type, fill
    em.line(f"{acc} = {combine}({acc}, {masked})")
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
        v = Val(sched.value_name(member), KD.compute_type(member.dtype), shaped=True)
        em.line(f"tl.store({em.ctx.pointer(member)} + {offset_text(em, offset)}, "
                f"{store_text(v, member, '[XBLOCK, 1]')}, mask=xmask)")


def _epilogue(em: Emitter, sched: Schedule, plan: KernelPlan, full, full_mask: str) -> None:
    _full_outputs(em, sched, plan, full, full_mask)
    _row_outputs(em, sched, plan, full)
