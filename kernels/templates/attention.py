"""Lowering stage: fused attention kernels — flash-style forward, log-sum-exp, and the fused backward.

Every kernel walks the L x S score matrix in BLOCK_M x BLOCK_N tiles held in registers and never
writes it to memory (the ops are in tritonflow/ops/attention.py):

- attention (forward): one program per BLOCK_M query rows of one batch entry. For each key
  block: s = q @ k^T * scale (+ mask), the running row max m and normalizer l are updated
  (online softmax: earlier partial sums are rescaled by exp(m_old - m_new)), dropout drops
  probabilities with the Philox stream, and acc += p @ v. Exponentials are base 2, with the scale
  folded in (log2(e) * scale), as in FlashAttention-2. A fully masked row stays at max -inf and
  yields zeros, never NaN.
- attention_lse: the same pass without v, storing the natural log-sum-exp of each row.
- attention_delta: per query block, recompute the scores s and dp = dO @ v^T, with an online
  row max m and z = sum exp(s - m) as in the forward, and store delta = sum(exp(s - m) * dp) / z,
  m and 1 / z per row ([..., L, 3]; ops/attention.py says why).
- attention_dq: per query block, p = exp(s - m) / z and dp exactly as attention_delta computes
  them (the same tiles and products, so sum_j ds = 0 holds to rounding), ds = p * (dp - delta)
  and dq += ds @ k.
- attention_dkv: per key block, loop over query blocks: dv += p^T @ dO, dk += ds^T @ q; stores
  dk and dv side by side ([..., S, E + Ev]).
Causal masking skips the key blocks above the diagonal (forward, dq) or query blocks before it
(dkv). Operands are read through their views as strided blocks: the scheduler materializes
anything that is not a strided view of a buffer (templates/fusion.py).
"""
from __future__ import annotations

import math

import sympy

from tritonflow.kernels.codegen import triton_types as KD
from tritonflow.kernels import heuristics
from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen.context import GeneratedKernel, symbol_evaluator
from tritonflow.kernels.codegen.emit import Emitter
from tritonflow.kernels.templates.fusion import (TemplateContext, attention_batch, attention_roles, operand_bounds,
                                                 operand_index, strided_form, template_name)
from tritonflow import dtypes as D
from tritonflow.errors import LoweringError

LOG2E = 1.4426950408889634
NEG_INF = "float(\"-inf\")"


def _dot(a: str, b: str, state: dict) -> str:
    dtype = state["dtype"]
    if dtype == "float64":
        return f"tl.sum({a}[:, :, None] * {b}[None, :, :], 1)"
    if dtype == "float32":
        return f"tl.dot({a}, {b}, input_precision=INPUT_PRECISION)"
    if dtype == "bfloat16" and state["interpreted"]:
        # Triton 3.6's interpreter returns garbage for bfloat16 tl.dot; widening is exact.
        return f"tl.dot({a}.to(tl.float32), {b}.to(tl.float32), input_precision=\"ieee\")"
    return f"tl.dot({a}, {b})"


def _static(d, what: str, node) -> int:
    expr = ix.as_expr(d)
    if not expr.is_number:
        raise LoweringError(f"attention: the {what} must be static to pick the kernel's block size, got {d} "
                            f"for {node.op}")
    return int(expr)


class Operand:
    """One strided operand: pointer, the batch part of its offset, row and column strides."""

    def __init__(self, ctx, printer, plan_node, role: str, batch_index: tuple) -> None:
        node = attention_roles(plan_node)[role]
        rows, cols = operand_bounds(plan_node, role, node)
        index = operand_index(node, role, batch_index, rows, cols)
        found = strided_form(ctx, node, index, rows, cols)
        if found is None:
            raise LoweringError(f"attention: operand {ctx.schedule.node_line(node)} is not a strided view "
                                "(the scheduler should have materialized it)")
        buffer, rest, row_stride, col_stride = found
        self.ptr = ctx.pointer(buffer)
        self.rest = printer(rest)
        self.row = printer(row_stride)
        self.col = printer(col_stride)
        ctx.describe(node)

    def at(self, rows: str, cols: str = None) -> str:
        """Address text of rows x cols (each a broadcastable index expression)."""
        text = f"{self.ptr} + {self.rest} + {rows} * {self.row}"
        if cols is not None:
            text += f" + {cols} * {self.col}"
        return text


def generate_attention(sched, plan, layout: dict, wide: bool, name: str) -> GeneratedKernel:
    node = plan.members[0]
    template = plan.template.template
    attrs = node.attrs
    roles = attention_roles(node)
    q, k = roles["q"], roles["k"]
    v = roles.get("v", k)
    dtype = q.dtype.name
    storage = KD.storage_type(q.dtype)
    batch_shape = attention_batch(node)
    ctx = TemplateContext(sched, layout, wide, plan.template.sources)
    batch = ctx.add_space(ix.Space("b", [d for d in batch_shape if not ix.is_one(d)], "bindex", ""))
    it = iter(batch.variables)
    batch_index = tuple(sympy.Integer(0) if ix.is_one(d) else next(it) for d in batch_shape)
    printer = ix.TritonPrinter()
    head_dim = _static(q.shape[-1], "query head dim", node)
    value_dim = _static(v.shape[-1], "value head dim", node)
    block_d = max(16, heuristics.next_pow2(head_dim))
    block_dv = max(16, heuristics.next_pow2(value_dim))
    ops = {role: Operand(ctx, printer, node, role, batch_index)
           for role in ("q", "k", "v", "g", "stats") if role in roles}
    mask_kind = attrs.get("mask", "none")
    if mask_kind != "none":
        ops["mask"] = Operand(ctx, printer, node, "mask", batch_index)
    dropout = attrs.get("dropout_p", 0.0) if template != "attention_lse" else 0.0
    rng_lines = []
    if dropout > 0:
        em = Emitter(ctx, "    ")
        seed = em.value(roles["seed"], ())
        offset = em.value(roles["offset"], ())
        rng_lines = em.lines + [f"    seed = tl.sum({seed.text} + tl.zeros([1], tl.int64), 0)",
                                f"    rng_offset = tl.sum({offset.text} + tl.zeros([1], tl.int64), 0)"]
        printer.used |= em.printer.used
    scale_log2 = float(attrs["scale"]) * LOG2E
    # Triton 3.6's interpreter returns garbage for a bfloat16 tl.dot: widened there (see _dot).
    state = dict(dtype=dtype, interpreted=sched.target.interpreted, storage=storage, mask=mask_kind,
                 causal=bool(attrs.get("is_causal")),
                 dropout=dropout, scale_log2=scale_log2, scale=float(attrs["scale"]),
                 lse_node=plan.members[1] if len(plan.members) > 1 else None)
    body = {"attention": _forward_body, "attention_lse": _forward_body, "attention_delta": _delta_body,
            "attention_dq": _dq_body, "attention_dkv": _dkv_body}[template](ops, node, template, state, printer, ctx)

    head_printer = ix.TritonPrinter()
    program = "tl.program_id(1).to(tl.int64)" if wide else "tl.program_id(1)"
    head = [
        f"    size_l = {head_printer(q.shape[-2])}",
        f"    size_s = {head_printer(k.shape[-2])}",
        "    pid = tl.program_id(0)",
        f"    bindex = {program}",
        "    offs_d = tl.arange(0, BLOCK_D)",
        f"    dmask = offs_d < {head_dim}",
        "    offs_dv = tl.arange(0, BLOCK_DV)",
        f"    dvmask = offs_dv < {value_dim}",
    ]
    used = printer.used | head_printer.used
    head += ctx.index_prologue(batch, head_printer, used, "    ")
    head += rng_lines
    constexprs = ["BLOCK_M", "BLOCK_N", "BLOCK_D", "BLOCK_DV", "INPUT_PRECISION"]
    acc_type = "tl.float64" if dtype == "float64" else "tl.float32"
    body = [line.replace("ACC", acc_type) for line in body]
    args, params = ctx.signature([printer, head_printer], constexprs)
    what = {"attention": "flash attention forward", "attention_lse": "attention row log-sum-exp",
            "attention_delta": "attention backward (row delta, max and normalizer)",
            "attention_dq": "attention backward (dq)", "attention_dkv": "attention backward (dk, dv)"}[template]
    summary = f"{what}, q {q.shape}, k {k.shape}, mask {mask_kind}, causal {state['causal']}, dropout {dropout}"
    source = ctx.render(name, summary, params, head + body)
    sizes = (symbol_evaluator(q.shape[-2]), symbol_evaluator(k.shape[-2]), symbol_evaluator(ix.product(batch_shape)))
    over = "k" if template == "attention_dkv" else "q"
    config = {"template": template, "sizes": sizes, "head_block": max(block_d, block_dv), "dtype": dtype,
              "grid_over": over, "variant": f"{mask_kind}-{state['causal']}-{dropout > 0}",
              "block_d": block_d, "block_dv": block_dv}
    return GeneratedKernel(name=name, kind=template, source=source, node_lines=list(ctx.ir_lines), args=args,
                           constexprs={}, grid=None, numel=symbol_evaluator(ix.product(node.shape)),
                           config=config, reads=list(ctx.deps.values()), writes=list(plan.members))


# ---------------------------------------------------------------- shared pieces

def _num(state, value: float) -> str:
    """A float literal as the kernel computes with it: float32's shortest text (float64 kernels: all digits)."""
    return KD.literal(value, D.float64 if state["dtype"] == "float64" else D.float32)


def _score_mask_lines(ops, state, indent: str, log2: bool = True) -> list:
    """Mask the score tile `s` (query rows x key columns; in base-2 units unless not `log2`)."""
    both = "(mmask[:, None] & nmask[None, :])"
    lines = []
    if state["mask"] != "none":
        mask = ops["mask"]
        load = f"tl.load({mask.at('offs_m[:, None]', 'offs_n[None, :]')}, mask={both}, other=0)"
        if state["mask"] == "additive":
            lines.append(f"s += {load}.to(ACC)" + (f" * {_num(state, LOG2E)}" if log2 else ""))
        else:
            lines.append(f"s = tl.where({load} != 0, s, {NEG_INF})")
    if state["causal"]:
        lines.append(f"s = tl.where(offs_n[None, :] <= offs_m[:, None], s, {NEG_INF})  "
                     "# causal: key j visible from query i >= j")
    lines.append(f"s = tl.where({both}, s, {NEG_INF})")
    return [indent + line for line in lines]


def _keep_lines(state, indent: str) -> list:
    if state["dropout"] <= 0:
        return []
    return [indent + "counter = rng_offset + (bindex.to(tl.int64) * size_l + offs_m[:, None]) * size_s + offs_n[None, :]",
            indent + f"keep = th.philox_uniform(seed, counter, 0) >= {_num(state, state['dropout'])}"]


def _store_rows(ptr: str, base: str, rows: str, width: str, cols: str, value: str, storage: str, mask: str) -> str:
    return f"    tl.store({ptr} + {base} + {rows} * {width} + {cols}, {value}.to({storage}), mask={mask})"


def _out_base(ctx, node, printer) -> tuple:
    """(pointer, batch base text) of the node's contiguous output buffer."""
    rows_and_cols = ix.product(node.shape[-2:]) if template_name(node) != "attention_lse" else ix.as_expr(node.shape[-1])
    return ctx.pointer(node), f"bindex * ({printer(rows_and_cols)})"


def _program_block(axis: str, loads: list) -> list:
    """This program's block of query rows (axis "m") or key rows ("n"), and the (name, operand,
    "d" or "dv") tiles of those rows it keeps for the whole loop."""
    block, size = ("BLOCK_M", "size_l") if axis == "m" else ("BLOCK_N", "size_s")
    lines = [f"    offs_{axis} = pid * {block} + tl.arange(0, {block})", f"    {axis}mask = offs_{axis} < {size}"]
    for name, operand, width in loads:
        lines.append(f"    {name} = tl.load({operand.at(f'offs_{axis}[:, None]', f'offs_{width}[None, :]')}, "
                     f"mask={axis}mask[:, None] & {width}mask[None, :], other=0)")
    return lines


def _key_loop_head(ops, node, state, ctx, transposed: bool) -> list:
    """The loop over key blocks up to the causal bound: its key tile (`kt` = k^T for the forward,
    or `kb` = k for the backward's shared score line) and the masked, scaled scores `s`."""
    k = ops["k"]
    if state["causal"]:
        bound = "    hi = tl.minimum(size_s, (pid + 1) * BLOCK_M)  # later key blocks are all masked"
    else:
        bound = "    hi = size_s"
    lines = [
        bound,
        "    for start_n in range(0, hi, BLOCK_N):",
        "        offs_n = start_n + tl.arange(0, BLOCK_N)",
        "        nmask = offs_n < size_s",
    ]
    if not transposed:
        return lines + [_key_rows_load("kb", k, "d", "        ")] + _backward_scores(ops, node, state, ctx, "        ")
    lines += [
        f"        kt = tl.load({k.at('offs_n[None, :]', 'offs_d[:, None]')}, mask=nmask[None, :] & dmask[:, None], other=0)",
        f"        s = {_dot('q', 'kt', state)}.to(ACC) * {_num(state, state['scale_log2'])}  # {ctx.describe(node)}",
    ]
    return lines + _score_mask_lines(ops, state, "        ")


def _key_rows_load(name: str, operand, width: str, indent: str) -> str:
    return (f"{indent}{name} = tl.load({operand.at('offs_n[:, None]', f'offs_{width}[None, :]')}, "
            f"mask=nmask[:, None] & {width}mask[None, :], other=0)")


# ---------------------------------------------------------------- forward and lse

def _forward_body(ops, node, template, state, printer, ctx) -> list:
    storage = state["storage"]
    q = ops["q"]
    lines = _program_block("m", [("q", q, "d")]) + [
        f"    m_i = tl.full([BLOCK_M], {NEG_INF}, ACC)",
        "    l_i = tl.zeros([BLOCK_M], ACC)",
    ]
    if template == "attention":
        lines.append("    acc = tl.zeros([BLOCK_M, BLOCK_DV], ACC)")
    lines += _key_loop_head(ops, node, state, ctx, transposed=True)
    lines += [
        "        m_new = tl.maximum(m_i, tl.max(s, 1))",
        f"        m_use = tl.where(m_new == {NEG_INF}, 0.0, m_new)  # a fully masked row so far: no NaN",
        "        alpha = tl.math.exp2(m_i - m_use)",
        "        p = tl.math.exp2(s - m_use[:, None])",
        "        l_i = l_i * alpha + tl.sum(p, 1)",
    ]
    if template == "attention":
        v = ops["v"]
        keep = _keep_lines(state, "        ")
        if keep:
            lines += keep
            lines.append(f"        p = tl.where(keep, p * {_num(state, 1.0 / (1.0 - state['dropout']))}, 0.0)")
        lines += [
            f"        v = tl.load({v.at('offs_n[:, None]', 'offs_dv[None, :]')}, mask=nmask[:, None] & dvmask[None, :], "
            "other=0)",
            f"        acc = acc * alpha[:, None] + {_dot(f'p.to({storage})', 'v', state)}.to(ACC)",
        ]
    lines.append("        m_i = m_new")
    ptr, base = _out_base(ctx, node, printer)
    lse_node = node if template == "attention_lse" else state.get("lse_node")
    if template == "attention":
        width = _width(node.shape[-1])
        lines.append("    out = acc / tl.where(l_i == 0, 1.0, l_i)[:, None]")
        lines.append(_store_rows(ptr, base, "offs_m[:, None]", width, "offs_dv[None, :]", "out", storage,
                                 "mmask[:, None] & dvmask[None, :]"))
    if lse_node is not None:
        lse_ptr, lse_base = _out_base(ctx, lse_node, printer)
        ctx.describe(lse_node)
        lines.append(f"    lse = tl.where(l_i == 0, {NEG_INF}, (m_i + tl.math.log2(tl.where(l_i == 0, 1.0, l_i))) "
                     f"* {_num(state, math.log(2.0))})")
        lines.append(f"    tl.store({lse_ptr} + {lse_base} + offs_m, lse.to({KD.storage_type(lse_node.dtype)}), "
                     "mask=mmask)")
    return lines


def _width(d) -> str:
    return ix.TritonPrinter()(ix.as_expr(d))


# ---------------------------------------------------------------- backward

def _row_stats_lines(ops, state, indent: str) -> list:
    """The query block's delta, row max and 1 / z from attention_delta's [..., L, 3] output."""
    stats = ops["stats"]
    return [indent + f"{name} = tl.load({stats.at('offs_m', str(col))}, mask=mmask, other=0).to(ACC)"
            for col, name in enumerate(("delta", "row_max", "inv_z"))]


def _backward_scores(ops, node, state, ctx, indent: str) -> list:
    """s = q @ kb^T * scale of one (query block, key block) tile: the same text, operands and tile
    shape in the delta, dq and dkv kernels, so all three see bitwise the same scores (and so the
    same p). In natural units, unlike the forward: s - m is then taken between two numbers rounded
    at their own magnitude (~1e3 for large scores), and only the small difference is scaled for
    exp2, so a row's largest score gives exp2(0) = 1 exactly."""
    line = f"s = {_dot('q', 'tl.trans(kb)', state)}.to(ACC) * {_num(state, state['scale'])}"
    return [f"{indent}{line}  # {ctx.describe(node)}"] + _score_mask_lines(ops, state, indent, log2=False)


def _exp_lines(state, indent: str, top: str) -> list:
    """p = exp(s - top) of the tile and dp = dO @ vb^T, dropped out as the forward dropped p
    (`pd`: p dropped out, for dv); shared like _backward_scores."""
    lines = [indent + f"p = tl.math.exp2((s - {top}[:, None]) * {_num(state, LOG2E)})",
             indent + f"dp = {_dot('do', 'tl.trans(vb)', state)}.to(ACC)"]
    keep = _keep_lines(state, indent)
    if keep:
        factor = _num(state, 1.0 / (1.0 - state["dropout"]))
        lines += keep + [indent + f"dp = tl.where(keep, dp * {factor}, 0.0)",
                         indent + f"pd = tl.where(keep, p * {factor}, 0.0)"]
    else:
        lines.append(indent + "pd = p")
    return lines


def _normalized_lines(state, indent: str) -> list:
    """p = exp(s - m) / z and dp of the tile, from the row statistics (dq and dkv)."""
    lines = _exp_lines(state, indent, "row_max")
    lines.insert(1, indent + "p = p * inv_z[:, None]")
    return lines


def _delta_body(ops, node, template, state, printer, ctx) -> list:
    q, g = ops["q"], ops["g"]
    lines = _program_block("m", [("q", q, "d"), ("do", g, "dv")]) + [
        f"    m_i = tl.full([BLOCK_M], {NEG_INF}, ACC)",
        "    z = tl.zeros([BLOCK_M], ACC)",
        "    pdp = tl.zeros([BLOCK_M], ACC)",
    ]
    lines += _key_loop_head(ops, node, state, ctx, transposed=False)
    lines += [
        _key_rows_load("vb", ops["v"], "dv", "        "),
        "        m_new = tl.maximum(m_i, tl.max(s, 1))",
        f"        m_use = tl.where(m_new == {NEG_INF}, 0.0, m_new)  # a fully masked row so far: no NaN",
        f"        alpha = tl.math.exp2((m_i - m_use) * {_num(state, LOG2E)})",
    ]
    lines += _exp_lines(state, "        ", "m_use")
    lines += [
        "        z = z * alpha + tl.sum(p, 1)",
        "        pdp = pdp * alpha + tl.sum(p * dp, 1)",
        "        m_i = m_new",
    ]
    ptr, base = _out_base(ctx, node, printer)
    storage = KD.storage_type(node.dtype)
    row = f"{ptr} + {base} + offs_m * 3"
    lines += [
        "    safe_z = tl.where(z == 0, 1.0, z)  # a fully masked row: p = 0",
        f"    tl.store({row}, tl.where(z == 0, 0.0, pdp / safe_z).to({storage}), mask=mmask)",
        f"    tl.store({row} + 1, tl.where(m_i == {NEG_INF}, 0.0, m_i).to({storage}), mask=mmask)",
        f"    tl.store({row} + 2, tl.where(z == 0, 0.0, 1.0 / safe_z).to({storage}), mask=mmask)",
    ]
    return lines


def _dq_body(ops, node, template, state, printer, ctx) -> list:
    storage = state["storage"]
    q, g = ops["q"], ops["g"]
    lines = _program_block("m", [("q", q, "d"), ("do", g, "dv")])
    lines += _row_stats_lines(ops, state, "    ")
    lines.append("    dq = tl.zeros([BLOCK_M, BLOCK_D], ACC)")
    lines += _key_loop_head(ops, node, state, ctx, transposed=False)
    lines += [_key_rows_load("vb", ops["v"], "dv", "        ")]
    lines += _normalized_lines(state, "        ")
    lines += [
        "        ds = p * (dp - delta[:, None])",
        f"        dq += {_dot(f'ds.to({storage})', 'kb', state)}.to(ACC)",
    ]
    ptr, base = _out_base(ctx, node, printer)
    lines.append(f"    dq = dq * {_num(state, state['scale'])}")
    lines.append(_store_rows(ptr, base, "offs_m[:, None]", _width(node.shape[-1]), "offs_d[None, :]", "dq", storage,
                             "mmask[:, None] & dmask[None, :]"))
    return lines


def _dkv_body(ops, node, template, state, printer, ctx) -> list:
    """Per key block, over the query blocks that see it: the tiles in the (query, key)
    orientation of the other backward kernels, transposed only as operands of the products."""
    storage = state["storage"]
    q, k, v, g = ops["q"], ops["k"], ops["v"], ops["g"]
    lines = _program_block("n", [("kb", k, "d"), ("vb", v, "dv")]) + [
        "    dk = tl.zeros([BLOCK_N, BLOCK_D], ACC)",
        "    dv = tl.zeros([BLOCK_N, BLOCK_DV], ACC)",
    ]
    if state["causal"]:
        lines.append("    lo = (pid * BLOCK_N // BLOCK_M) * BLOCK_M  # earlier query blocks see none of these keys")
    else:
        lines.append("    lo = 0")
    lines += [
        "    for start_m in range(lo, size_l, BLOCK_M):",
        "        offs_m = start_m + tl.arange(0, BLOCK_M)",
        "        mmask = offs_m < size_l",
        f"        q = tl.load({q.at('offs_m[:, None]', 'offs_d[None, :]')}, mask=mmask[:, None] & dmask[None, :], "
        "other=0)",
        f"        do = tl.load({g.at('offs_m[:, None]', 'offs_dv[None, :]')}, mask=mmask[:, None] & dvmask[None, :], "
        "other=0)",
    ]
    lines += _row_stats_lines(ops, state, "        ")
    lines += _backward_scores(ops, node, state, ctx, "        ")
    lines += _normalized_lines(state, "        ")
    lines += [
        f"        dv += {_dot(f'tl.trans(pd).to({storage})', 'do', state)}.to(ACC)",
        "        ds = p * (dp - delta[:, None])",
        f"        dk += {_dot(f'tl.trans(ds).to({storage})', 'q', state)}.to(ACC)",
    ]
    ptr, base = _out_base(ctx, node, printer)
    width = _width(node.shape[-1])
    head_dim = _width(attention_roles(node)["k"].shape[-1])
    lines.append(f"    dk = dk * {_num(state, state['scale'])}")
    lines.append(_store_rows(ptr, base, "offs_n[:, None]", width, "offs_d[None, :]", "dk", storage,
                             "nmask[:, None] & dmask[None, :]"))
    lines.append(_store_rows(ptr, base, "offs_n[:, None]", width, f"{head_dim} + offs_dv[None, :]", "dv", storage,
                             "nmask[:, None] & dvmask[None, :]"))
    return lines
