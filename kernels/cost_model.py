"""Lowering stage (analysis): a static cost model — the bytes each kernel moves, its FLOPs, its time.

Per kernel, at the call's sizes and the launch configuration the target gets:

- bytes *requested* per buffer, as the kernel loads them: code generation records every load it
  emits (codegen/context.py's LoadRecord: the buffer and the offset in the kernel's index
  variables; loads on a path only special values take, like the online sum's exact pass for rows
  holding inf or NaN, are left out); the offset is evaluated over each program's block (a pointwise program's XBLOCK
  elements, a reduction program's XBLOCK rows and every element of them it walks, a matmul
  epilogue's tile) and the distinct addresses a program touches are counted. So a broadcast operand
  reloaded by every program counts once per program, and a looped reduction that reads its row in
  two passes counts twice. Programs are sampled evenly when there are many. Template operands are
  counted from their tiles: a matmul program reads BLOCK_M x K of A and K x BLOCK_N of B; an
  attention program reads its query block once and the key/value blocks it visits (half of them
  under a causal mask).
- bytes from *memory* (DRAM) per buffer: what is requested, except that data re-read by programs
  running close together is read once when it fits in half the target's L2: a whole buffer (a
  layer-norm weight), one batch entry of an attention operand, or, for matmul operands, the A and B
  panels of one wave of programs (sm_count tiles in the grouped order). Never less than the buffer's
  footprint, never more than requested.
- bytes written: every element of every stored buffer, once.
- FLOPs: tensor-core FLOPs of matmul and attention dots (2 per multiply-add), and one FLOP per
  element of every other computed node (elementwise ops, reduction inputs).

Predicted time of a kernel: the larger of memory bytes / the target's copy bandwidth and FLOPs /
peak rate (matmul rate of the dot dtype; vector rate for the rest) — a roofline, without launch
overheads — scaled up when the grid has fewer programs than the target has SMs (a program runs
on one SM: a one-program reduction of a whole tensor uses 1/132 of an H100). Per compiled function: the sum over kernels, against the minimum a function can move
(every graph input read once, every output written once; saved activations count as a forward
output and a backward input).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import sympy

from tritonflow.ops.registry import OPS, Kind
from tritonflow.target import Target

SAMPLED_PROGRAMS = 24
LANES_PER_PROGRAM = 1 << 16     # element positions evaluated per sampled program (longer rows: strided)
_NODE_NUMBER = re.compile(r"^\s*%([0-9]+):")
_NUMPY_FUNCTIONS = [{"FloorDiv": np.floor_divide, "ModIdx": np.mod}, "numpy"]
DOT_DTYPES = ("float16", "bfloat16", "float32")


@dataclass
class BufferTraffic:
    requested: float = 0.0       # bytes the kernel's loads ask for
    memory: float = 0.0          # bytes from DRAM (module docstring)
    written: float = 0.0


@dataclass
class KernelCost:
    name: str
    kind: str
    buffers: dict = field(default_factory=dict)    # buffer name -> BufferTraffic
    dot_flops: float = 0.0
    dot_dtype: str = ""
    vector_flops: float = 0.0
    programs: int = 1
    seconds: float = 0.0

    @property
    def bytes(self) -> float:
        return sum(b.memory + b.written for b in self.buffers.values())

    @property
    def requested_bytes(self) -> float:
        return sum(b.requested + b.written for b in self.buffers.values())

    @property
    def flops(self) -> float:
        return self.dot_flops + self.vector_flops


@dataclass
class FunctionCost:
    target: Target
    kernels: list
    minimum_bytes: float

    @property
    def bytes(self) -> float:
        return sum(k.bytes for k in self.kernels)

    @property
    def flops(self) -> float:
        return sum(k.flops for k in self.kernels)

    @property
    def seconds(self) -> float:
        return sum(k.seconds for k in self.kernels)

    @property
    def ratio(self) -> float:
        return self.bytes / self.minimum_bytes if self.minimum_bytes else float("nan")

    def __str__(self) -> str:
        t = self.target
        text = (f"cost model: {self.bytes / 1e6:.1f} MB moved (minimum {self.minimum_bytes / 1e6:.1f} MB, "
                f"{self.ratio:.2f}x), {self.flops / 1e9:.2f} GFLOP")
        if t.memory_bandwidth:
            text += (f"; predicted {1e6 * self.seconds:.1f} us at {t.memory_bandwidth / 1e9:.0f} GB/s and "
                     f"{t.matmul_peak('bfloat16') / 1e12:.0f} TFLOP/s bf16 ({t.name}"
                     f"{'' if t.measured else ', datasheet'})")
        return text


# ---------------------------------------------------------------- sizes

def _value(expr, symbols: dict) -> int:
    expr = sympy.sympify(expr)
    if expr.is_number:
        return int(expr)
    return int(expr.subs({s: symbols[s.name] for s in expr.free_symbols}))


def _numel(shape, symbols: dict) -> int:
    return math.prod(_value(d, symbols) for d in shape)


def _bytes(node, symbols: dict) -> int:
    return _numel(node.shape, symbols) * node.dtype.itemsize


# ---------------------------------------------------------------- evaluating recorded loads

def _flat_offset(record, symbols: dict):
    """The load's offset as a function of the spaces' flat indices (and data-dependent positions)."""
    expr = sympy.sympify(record.offset)
    for _ in range(4):   # definitions refer to flat indices only; nested tails take a second round
        subs = {}
        for space in record.spaces:
            for k, tail in space.tail_symbols.items():
                subs[tail] = space.tail_definition(k)
            for d, var in enumerate(space.variables):
                subs[var] = space.var_definition(d)
        if not expr.free_symbols & set(subs):
            break
        expr = expr.xreplace(subs)
    sizes = {s: symbols[s.name] for s in expr.free_symbols if s.name in symbols}
    return expr.xreplace({s: sympy.Integer(v) for s, v in sizes.items()}) if sizes else expr


class _Evaluator:
    """Distinct addresses of one recorded load per program, for a kernel's program geometry."""

    def __init__(self, record, symbols: dict, flat_names: set) -> None:
        expr = _flat_offset(record, symbols)
        self.names = sorted(s.name for s in expr.free_symbols)
        self.data_dependent = any(n not in flat_names for n in self.names)
        self.limit = _numel(record.node.shape, symbols)
        plain = expr.xreplace({s: sympy.Symbol(s.name) for s in expr.free_symbols})
        self.function = sympy.lambdify([sympy.Symbol(n) for n in self.names], plain, modules=_NUMPY_FUNCTIONS)

    def distinct(self, lanes: dict, valid: np.ndarray) -> int:
        if self.data_dependent:
            return int(valid.sum())       # a gathered position: each lane its own address
        args = [lanes[n] for n in self.names]
        addresses = np.broadcast_to(np.asarray(self.function(*args), dtype=np.int64), valid.shape)
        keep = valid & (addresses >= 0) & (addresses < self.limit)
        return int(np.unique(addresses[keep]).size)


def _distinct(evaluator, geometry, p: int) -> float:
    lanes, valid, scale = geometry.lanes(p, evaluator)
    return evaluator.distinct(lanes, valid) * scale


def _programs_to_sample(count: int) -> list:
    if count <= SAMPLED_PROGRAMS:
        return list(range(count))
    return sorted({round(i * (count - 1) / (SAMPLED_PROGRAMS - 1)) for i in range(SAMPLED_PROGRAMS)})


def _total_over_programs(count: int, per_program) -> float:
    """Sum of per_program(p) over all programs, from an even sample when there are many."""
    sample = _programs_to_sample(count)
    values = {p: per_program(p) for p in sample}
    if len(sample) == count:
        return float(sum(values.values()))
    last = values[count - 1]
    rest = [v for p, v in values.items() if p != count - 1]
    return float(np.mean(rest)) * (count - 1) + last


class _RowGeometry:
    """Reduction and scan programs: XBLOCK rows each, walking every one of `rnumel` elements."""

    def __init__(self, config: dict, xnumel: int, rnumel: int) -> None:
        self.xblock, self.xnumel, self.rnumel = config["XBLOCK"], xnumel, rnumel
        self.programs = cdiv(xnumel, self.xblock)

    def lanes(self, p: int, evaluator) -> tuple:
        """(lane arrays, valid mask, scale): long rows are sampled at evenly strided positions and the
        count scaled back; a load that does not depend on rindex needs one position only."""
        xindex = p * self.xblock + np.arange(self.xblock, dtype=np.int64)[:, None]
        if "rindex" not in evaluator.names:
            return {"xindex": xindex, "rindex": np.zeros((1, 1), np.int64)}, np.broadcast_to(
                xindex < self.xnumel, (self.xblock, 1)), 1.0
        step = max(1, cdiv(self.rnumel * self.xblock, LANES_PER_PROGRAM))
        rindex = np.arange(0, self.rnumel, step, dtype=np.int64)[None, :]
        valid = (xindex < self.xnumel) & (rindex < self.rnumel)
        return {"xindex": xindex, "rindex": rindex}, valid, self.rnumel / rindex.shape[1]


class _FlatGeometry:
    """Pointwise and scatter programs: XBLOCK consecutive elements each."""

    def __init__(self, config: dict, numel: int) -> None:
        self.xblock, self.numel = config["XBLOCK"], numel
        self.programs = cdiv(numel, self.xblock)

    def lanes(self, p: int, evaluator) -> tuple:
        xindex = p * self.xblock + np.arange(self.xblock, dtype=np.int64)
        return {"xindex": xindex}, xindex < self.numel, 1.0


class _TileGeometry:
    """Matmul epilogue programs: one BLOCK_M x BLOCK_N output tile of one batch entry each."""

    def __init__(self, config: dict, m: int, n: int, batch: int) -> None:
        self.bm, self.bn, self.m, self.n = config["BLOCK_M"], config["BLOCK_N"], m, n
        self.num_n = cdiv(n, self.bn)
        self.tiles = cdiv(m, self.bm) * self.num_n
        self.programs = batch * self.tiles

    def lanes(self, p: int, evaluator) -> tuple:
        b, tile = divmod(p, self.tiles)
        offs_m = (tile // self.num_n) * self.bm + np.arange(self.bm, dtype=np.int64)[:, None]
        offs_n = (tile % self.num_n) * self.bn + np.arange(self.bn, dtype=np.int64)[None, :]
        return {"bindex": np.int64(b), "offs_m": offs_m, "offs_n": offs_n}, (offs_m < self.m) & (offs_n < self.n), 1.0


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _recorded_reads(cost: KernelCost, sched, loads: list, geometry, symbols: dict, target: Target,
                    skip: set = frozenset()) -> None:
    flat_names = {"xindex", "rindex", "bindex", "offs_m", "offs_n"}
    for record in loads:
        symbols_used = {s.name for s in sympy.sympify(record.offset).free_symbols}
        if record.rare or symbols_used & skip:
            continue
        evaluator = _Evaluator(record, symbols, flat_names)
        elements = _total_over_programs(geometry.programs, lambda p: _distinct(evaluator, geometry, p))
        itemsize = record.node.dtype.itemsize
        footprint = _bytes(record.node, symbols)
        _add_read(cost, sched.buffer_name(record.node), elements * itemsize, footprint, footprint, target)


def _add_read(cost: KernelCost, name: str, requested: float, footprint: float, reused: float,
              target: Target, memory: float = None) -> None:
    """Add a read of `requested` bytes; `reused` bytes are re-read by programs running together."""
    traffic = cost.buffers.setdefault(name, BufferTraffic())
    traffic.requested += requested
    if memory is None:
        memory = min(requested, footprint) if reused <= target.l2_bytes / 2 else requested
    traffic.memory += max(min(memory, requested), min(requested, footprint))


def _add_writes(cost: KernelCost, sched, nodes: list, symbols: dict) -> None:
    for node in nodes:
        cost.buffers.setdefault(sched.buffer_name(node), BufferTraffic()).written += _bytes(node, symbols)


def _vector_flops(sched, kernel, symbols: dict, lanes: int, skip=()) -> float:
    """One FLOP per element of each computed node, at most one per lane of the kernel's iteration
    space (a node feeding a gather is computed only at the gathered positions)."""
    total = 0.0
    nodes = sched.graph.nodes
    for line in kernel.generated.node_lines:
        found = _NODE_NUMBER.match(line)
        if not found:
            continue
        node = nodes[int(found.group(1))]
        op = OPS.get(node.op)
        if op is None or node in skip:
            continue
        if op.kind is Kind.ELEMENTWISE:
            total += min(lanes, _numel(node.shape, symbols))
        elif op.kind is Kind.REDUCTION:
            total += min(lanes, _numel(node.inputs[0].shape, symbols))
    return total


# ---------------------------------------------------------------- templates

def _matmul_reads(cost: KernelCost, sched, plan, kernel, config: dict, symbols: dict, target: Target) -> None:
    from tritonflow.kernels.templates.fusion import view_base
    node = plan.members[0]
    m, n, k, batch = (f(symbols) for f in kernel.generated.config["sizes"])
    bm, bn = config["BLOCK_M"], config["BLOCK_N"]
    num_m, num_n = cdiv(m, bm), cdiv(n, bn)
    programs = batch * num_m * num_n
    wave = max(1, target.sm_count)
    rows = min(num_m, config.get("GROUP_M", 1))
    cols = min(num_n, cdiv(wave, rows))
    waves = cdiv(programs, wave)
    for operand, per_program, per_wave in ((node.inputs[0], bm * k, rows * bm * k),
                                           (node.inputs[1], k * bn, cols * bn * k)):
        base = view_base(operand)
        itemsize = operand.dtype.itemsize
        footprint = _bytes(base, symbols)
        requested = programs * per_program * itemsize
        memory = footprint if footprint <= target.l2_bytes / 2 else waves * per_wave * itemsize
        _add_read(cost, sched.buffer_name(base), requested, footprint, footprint, target, memory=memory)
    cost.dot_flops += 2.0 * m * n * k * batch
    cost.dot_dtype = node.dtype.name
    _recorded_reads(cost, sched, kernel.generated.loads, _TileGeometry(config, m, n, batch), symbols, target,
                    skip={"offs_ka", "offs_kb", "ka0", "kb0"})


def _attention_reads(cost: KernelCost, sched, plan, kernel, config: dict, symbols: dict, target: Target) -> None:
    from tritonflow.kernels.templates.fusion import attention_batch, attention_roles, view_base
    node = plan.members[0]
    template = kernel.generated.config["template"]
    roles = attention_roles(node)
    q, k = roles["q"], roles["k"]
    v = roles.get("v", k)
    q_len, k_len = _value(q.shape[-2], symbols), _value(k.shape[-2], symbols)
    batch = _numel(attention_batch(node), symbols)
    d, dv = _value(q.shape[-1], symbols), _value(v.shape[-1], symbols)
    causal = bool(node.attrs.get("is_causal"))
    bm, bn = config["BLOCK_M"], config["BLOCK_N"]
    over_queries = kernel.generated.config["grid_over"] == "q"
    blocks = cdiv(q_len, bm) if over_queries else cdiv(k_len, bn)
    # Elements of the other sequence each program visits, summed over the blocks of one batch entry
    # (causal: query i sees keys 0..i, as torch's is_causal).
    if over_queries:
        visited = sum(min(k_len, (i + 1) * bm) if causal else k_len for i in range(blocks))
    else:
        visited = sum(max(0, q_len - i * bn) if causal else q_len for i in range(blocks))
    own_rows = ("q", "g", "lse", "delta") if over_queries else ("k", "v")
    for role, operand in roles.items():
        if role in ("seed", "offset"):
            continue
        base = view_base(operand)
        width = _value(operand.shape[-1], symbols) if len(operand.shape) and role not in ("lse", "delta") else 1
        if role == "mask":
            per_entry = visited * (bm if over_queries else bn)
        elif role in own_rows:
            per_entry = (q_len if role in ("q", "g", "lse", "delta") else k_len) * width
        else:
            per_entry = visited * width
        footprint = _bytes(base, symbols)
        slice_bytes = footprint / max(1, batch)
        _add_read(cost, sched.buffer_name(base), batch * per_entry * operand.dtype.itemsize, footprint,
                  slice_bytes, target)
    # FLOPs per (row of this program's block, visited element): 2 per multiply-add of each dot.
    per_pair = {"attention": 2 * (d + dv), "attention_lse": 2 * d, "attention_dq": 2 * (2 * d + dv),
                "attention_delta": 2 * (d + dv),
                "attention_dkv": 4 * (d + dv)}[template]
    rows = bm if over_queries else bn
    cost.dot_flops += float(batch) * visited * rows * per_pair
    cost.dot_dtype = q.dtype.name


# ---------------------------------------------------------------- per kernel, per function

def kernel_cost(sched, plan, kernel, config: dict, grid: tuple, symbols: dict, target: Target) -> KernelCost:
    """The cost of one kernel launch at `symbols` with `config` (module docstring)."""
    g = kernel.generated
    cost = KernelCost(g.name, g.kind, programs=math.prod(grid))
    template = g.config.get("template")
    if template == "matmul":
        _matmul_reads(cost, sched, plan, kernel, config, symbols, target)
        m, n, _, batch = (f(symbols) for f in g.config["sizes"])
        cost.vector_flops = _vector_flops(sched, kernel, symbols, m * n * batch, skip=(plan.members[0],))
    elif template:
        _attention_reads(cost, sched, plan, kernel, config, symbols, target)
    else:
        numel = g.numel(symbols)
        lanes = numel
        if g.kind in ("reduction", "scan"):
            lanes = numel * g.config["rnumel"](symbols)
            geometry = _RowGeometry(config, numel, g.config["rnumel"](symbols))
        else:
            geometry = _FlatGeometry(config, numel)
        _recorded_reads(cost, sched, g.loads, geometry, symbols, target)
        cost.vector_flops = _vector_flops(sched, kernel, symbols, lanes)
    _add_writes(cost, sched, g.writes, symbols)
    cost.seconds = _seconds(cost, target)
    return cost


def _seconds(cost: KernelCost, target: Target) -> float:
    if not target.memory_bandwidth:
        return 0.0
    from tritonflow.matmul_precision import triton_input_precision
    compute = 0.0
    if cost.dot_flops:
        peak = (target.matmul_peak(cost.dot_dtype, tf32=triton_input_precision() == "tf32")
                if cost.dot_dtype in DOT_DTYPES else target.vector_flops)
        compute += cost.dot_flops / peak
    compute += cost.vector_flops / target.vector_flops
    # Fewer programs than SMs leave the rest of the chip idle: one program runs on one SM.
    busy = min(1.0, cost.programs / max(1, target.sm_count))
    return max(cost.bytes / target.memory_bandwidth, compute) / busy


def minimum_bytes(graph, symbols: dict) -> int:
    """Every input of `graph` read once and every distinct output written once."""
    total = sum(_bytes(node, symbols) for node in graph.inputs)
    seen = set()
    for node in graph.outputs:
        if id(node) not in seen and node.op != "input":
            seen.add(id(node))
            total += _bytes(node, symbols)
    return total


def function_cost(kernels: list, graphs: list, symbols: dict, target: Target) -> FunctionCost:
    return FunctionCost(target, kernels, float(sum(minimum_bytes(g, symbols) for g in graphs)))
