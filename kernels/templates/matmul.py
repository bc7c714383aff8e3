"""Lowering stage: the matmul template — tiled `tl.dot` with grouped tile order and a fused epilogue.

One program computes one BLOCK_M x BLOCK_N output tile of one batch entry. Programs are numbered
batch-major, then in groups of GROUP_M tile rows (the order of Triton's matmul tutorial), so
consecutive programs share A row-panels and B column-panels in L2.

Operands: each is a chain of views over a buffer (graph input, another kernel's result, or a
materialized producer — see templates/fusion.py), or over a float cast of a graph input (what
autocast makes of a float32 weight), which each load converts to the matmul's dtype. Its address is an index expression in the batch,
m/n and k variables. When that expression is linear in k (every transpose, permute, expand and
slice is), the K loop advances a pointer block by BLOCK_K * stride_k, exactly like a
hand-written kernel: transposed operands cost no copy and no extra index math. Anything else
(a reshape that splits K) falls back to recomputing the address each step.

Masks: rows and columns past M and N load zeros and are never stored; the K tail is masked
unless K is a multiple of BLOCK_K (the EVEN_K constexpr). Accumulation is float32 for
float16/bfloat16/float32 inputs (float32 uses tf32 when `set_matmul_precision("high")`), and
a broadcast multiply-sum for float64 and integers (no tensor-core path).

Epilogue: the accumulator `acc` is the matmul's value; elementwise consumers the scheduler
attached (bias, activation, residual, scale, cast) are emitted over it and stored, and the raw
product is stored only if some other kernel or the caller needs it.
"""
from __future__ import annotations

import sympy

from tritonflow.kernels.codegen import triton_types as KD
from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen.pointwise import store_text
from tritonflow.kernels.codegen.context import GeneratedKernel, symbol_evaluator
from tritonflow.kernels.codegen.emit import Emitter
from tritonflow.kernels.templates.fusion import buffer_of, epilogue_context, is_input_cast
from tritonflow.ir.graph import Node

DOT_DTYPES = ("float16", "bfloat16", "float32")
ACC_TYPES = {"float16": "tl.float32", "bfloat16": "tl.float32", "float32": "tl.float32",
             "float64": "tl.float64", "int8": "tl.int32", "int32": "tl.int32", "int64": "tl.int64"}
CONSTEXPRS = ["BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "EVEN_K", "INPUT_PRECISION"]


def _times(factor: str, name: str) -> str:
    if factor == "1":
        return name
    return f"{factor} * {name}" if factor.isidentifier() or factor.isdigit() else f"({factor}) * {name}"


def resolve_view(node: Node, index: tuple, ranges) -> tuple:
    """Follow a chain of views to the node it reads: (base node, index into the base)."""
    while ix.is_plain_view(node):
        index = ix.through_view(node, index, ranges)
        node = node.inputs[0]
    return node, tuple(sympy.expand(i) for i in index)


class OperandLoader:
    """Emits the K-loop loads of one operand: a strided pointer block, or general index math."""

    def __init__(self, ctx, name: str, node: Node, index: tuple, k_space, rows: str, shape: str,
                 k_axis: int, storage: str) -> None:
        self.ctx = ctx
        self.name = name
        self.node = node
        self.index = index
        self.k_space = k_space        # this operand's k space (ka: a row vector, kb: a column)
        self.k_symbol = k_space.flat  # its flat variable
        self.rows = rows              # the mask of the non-k axis (mmask or nmask)
        self.shape = shape            # "[BLOCK_M, BLOCK_K]" or "[BLOCK_K, BLOCK_N]"
        self.k_axis = k_axis          # 1 for A (k along columns), 0 for B
        self.storage = storage
        self.fast = None              # (pointer node, offset without k, k stride) when linear in k
        self.convert = ""             # ".to(<storage>)" when the operand is a cast of an input

    def plan(self) -> None:
        base, index = resolve_view(self.node, self.index, self.ctx.ranges)
        if is_input_cast(base):       # load the input, convert in registers
            self.convert = f".to({self.storage})"
            base, index = resolve_view(base.inputs[0], index, self.ctx.ranges)
        buffer = buffer_of(self.ctx, base)
        if buffer is None:
            return
        strides = self.ctx.strides(buffer)
        offset = sum((i * s for i, s in zip(index, strides) if i != 0), sympy.Integer(0))
        offset = self.ctx.rewrite_offset(offset)
        found = ix.linear_coeffs(offset, [self.k_symbol])
        if found is None:
            return
        coeffs, rest = found
        stride = coeffs[self.k_symbol]
        k_names = {self.k_symbol.name} | {v.name for v in self.k_space.variables}
        k_names |= {t.name for t in self.k_space.tail_symbols.values()}
        if {s.name for s in sympy.sympify(rest).free_symbols} & k_names:
            return  # k appears inside a division (a reshape split K): recompute addresses each step
        if not all(s.name in self.ctx.external_symbols for s in stride.free_symbols):
            return  # the k stride depends on the row: not a strided block
        self.ctx.describe(base)
        if buffer.op not in ("input", "constant"):
            self.ctx.deps[id(buffer)] = buffer
        self.fast = (buffer, rest, stride)

    # ---------------------------------------------------------------- fast path

    def setup_lines(self, printer, wide: bool) -> list:
        buffer, rest, stride = self.fast
        k_range = "tl.arange(0, BLOCK_K)" + ("[None, :]" if self.k_axis == 1 else "[:, None]")
        if wide:
            k_range += ".to(tl.int64)"
        lines = [f"    rk_{self.name} = {k_range}"]
        ptr = f"{self.ctx.pointer(buffer)} + {printer(rest)}"
        if stride != 0:
            ptr += f" + {_times(printer(stride), f'rk_{self.name}')}"
        rest_rows = {"offs_m", "offs_n"} & {s.name for s in sympy.sympify(rest).free_symbols}
        if not rest_rows or stride == 0:
            ptr += f" + tl.zeros({self.shape}, tl.int32)"  # a broadcast operand still needs a full block
        lines.append(f"    {self.name}_ptrs = {ptr}  # {self.ctx.describe(self.node)}")
        return lines

    def step_lines(self, printer) -> list:
        _, _, stride = self.fast
        lines = [
            "        if EVEN_K:",
            f"            {self.name} = tl.load({self.name}_ptrs, mask={self.rows}, other=0){self.convert}",
            "        else:",
            f"            {self.name} = tl.load({self.name}_ptrs, mask={self.rows} & (rk_{self.name} < size_k - k0), "
            f"other=0){self.convert}",
        ]
        if stride != 0:
            lines.append(f"        {self.name}_ptrs += {_times(printer(stride), 'BLOCK_K')}")
        return lines

    # ---------------------------------------------------------------- general path

    def general_lines(self, em: Emitter, kmask: str) -> None:
        val = em.value(self.node, self.index)
        em.line(f"{self.name} = tl.where({self.rows} & {kmask}, tl.broadcast_to({val.text}, {self.shape}), 0)"
                f".to({self.storage})")


def generate_matmul(sched, plan, layout: dict, wide: bool, name: str) -> GeneratedKernel:
    node = plan.members[0]
    a, b = node.inputs
    ctx, full = epilogue_context(sched, plan, layout, wide)
    if hasattr(ctx, "defining"):
        ctx.defining |= {id(v) for _, v in plan.outputs} | {id(buf) for buf, _ in plan.outputs}
    batch, m_space, n_space = ctx.spaces
    out_shape = node.shape
    k_size = a.shape[-1]
    ka = ctx.add_space(ix.Space("ka", [k_size], "offs_ka", "kamask"))
    kb = ctx.add_space(ix.Space("kb", [k_size], "offs_kb", "kbmask"))
    batch_index = full[:-2]
    m0, n0 = full[-2:]
    a_index = ix.expand_index(batch_index, a.shape[:-2]) + (m0, ka.variables[0])
    b_index = ix.expand_index(batch_index, b.shape[:-2]) + (kb.variables[0], n0)
    dtype = node.dtype.name
    storage = KD.storage_type(node.dtype)
    acc_type = ACC_TYPES[dtype]
    head_printer = ix.TritonPrinter()
    loaders = [OperandLoader(ctx, "a", a, a_index, ka, "mmask", "[BLOCK_M, BLOCK_K]", 1, storage),
               OperandLoader(ctx, "b", b, b_index, kb, "nmask", "[BLOCK_K, BLOCK_N]", 0, storage)]
    for loader in loaders:
        loader.plan()

    # The K loop.
    loop = Emitter(ctx, "        ")
    setup = []
    general = [ld for ld in loaders if ld.fast is None]
    for loader in loaders:
        if loader.fast is not None:
            setup += loader.setup_lines(head_printer, wide)
            loop.lines += loader.step_lines(head_printer)
    if general:
        if any(ld.k_axis == 1 for ld in general):
            loop.line("offs_ka = k0 + tl.arange(0, BLOCK_K)[None, :]")
            loop.line("kamask = offs_ka < size_k")
        if any(ld.k_axis == 0 for ld in general):
            loop.line("offs_kb = k0 + tl.arange(0, BLOCK_K)[:, None]")
            loop.line("kbmask = offs_kb < size_k")
        body = Emitter(ctx, "        ")
        body.printer = loop.printer
        for loader in general:
            loader.general_lines(body, "kamask" if loader.k_axis == 1 else "kbmask")
        for space in (ka, kb):
            loop.lines += ctx.index_prologue(space, loop.printer, loop.printer.used, "        ")
        loop.lines += body.lines
    describe = ctx.describe(node)
    if dtype == "bfloat16" and sched.target.interpreted:
        # Triton 3.6's interpreter returns garbage for bfloat16 tl.dot; widening is exact.
        loop.line(f"acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision=\"ieee\")  # {describe}")
    elif dtype in ("float16", "bfloat16"):
        loop.line(f"acc = tl.dot(a, b, acc)  # {describe}")
    elif dtype == "float32":
        loop.line(f"acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)  # {describe}")
    else:
        loop.line(f"acc += tl.sum(a.to({acc_type})[:, :, None] * b.to({acc_type})[None, :, :], 1)  # {describe}")

    # The epilogue: the product itself if stored, then every attached consumer.
    epi = Emitter(ctx, "    ")
    mask = "mmask & nmask"
    out_offset = ctx.rewrite_offset(ix.linearize(full, out_shape))
    if acc_type != KD.compute_type(node.dtype):
        epi.line(f"acc = acc.to({KD.compute_type(node.dtype)})")
    if id(node) in sched.stored:
        epi.line(f"tl.store({ctx.pointer(node)} + {epi.index_text(out_offset)}, acc.to({storage}), mask={mask})")
    for buffer, value in plan.outputs:
        v = epi.value(value, full)
        offset = ctx.rewrite_offset(ix.linearize(full, buffer.shape))
        if buffer is not value:
            ctx.describe(buffer)
        epi.line(f"tl.store({ctx.pointer(buffer)} + {epi.index_text(offset)}, "
                 f"{store_text(v, buffer, '[BLOCK_M, BLOCK_N]')}, mask={mask})")

    used = loop.printer.used | epi.printer.used | head_printer.used
    program = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    head = [
        f"    size_m = {head_printer(m_space.numel)}",
        f"    size_n = {head_printer(n_space.numel)}",
        f"    size_k = {head_printer(ka.numel)}",
        f"    pid = {program}",
        "    num_pid_m = tl.cdiv(size_m, BLOCK_M)",
        "    num_pid_n = tl.cdiv(size_n, BLOCK_N)",
        "    tiles = num_pid_m * num_pid_n",
        "    bindex = pid // tiles",
        "    tile = pid % tiles",
        "    # grouped order: GROUP_M tile rows sweep the columns together, for L2 reuse",
        "    group_width = GROUP_M * num_pid_n",
        "    first_m = (tile // group_width) * GROUP_M",
        "    group_rows = tl.minimum(num_pid_m - first_m, GROUP_M)",
        "    pid_m = first_m + (tile % group_width) % group_rows",
        "    pid_n = (tile % group_width) // group_rows",
        "    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
        "    mmask = offs_m < size_m",
        "    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]",
        "    nmask = offs_n < size_n",
    ]
    for space in (batch, m_space, n_space):
        head += ctx.index_prologue(space, head_printer, used | head_printer.used, "    ")
    head += setup
    head += [f"    acc = tl.zeros([BLOCK_M, BLOCK_N], {acc_type})",
             "    for k0 in range(0, size_k, BLOCK_K):"]
    args, params = ctx.signature([loop.printer, epi.printer, head_printer], CONSTEXPRS)
    paths = "+".join("strided" if ld.fast is not None else "indexed" for ld in loaders)
    source = ctx.render(name, f"matmul template {a.shape} @ {b.shape} ({paths} operands, "
                              f"{len(plan.outputs)} epilogue outputs)", params, head + loop.lines + epi.lines)
    sizes = tuple(symbol_evaluator(e) for e in (m_space.numel, n_space.numel, ka.numel, batch.numel))
    return GeneratedKernel(
        name=name, kind="matmul", source=source, node_lines=list(ctx.ir_lines), args=args, constexprs={},
        grid=None, numel=symbol_evaluator(ix.product(out_shape)),
        config={"template": "matmul", "sizes": sizes, "dtype": dtype, "paths": paths},
        reads=list(ctx.deps.values()), loads=ctx.loads,
        writes=([node] if id(node) in sched.stored else []) + [buf for buf, _ in plan.outputs])
