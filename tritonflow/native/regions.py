"""Core: the C backend's scheduling — which nodes of a graph run as one generated C loop nest.

A region is a set of nodes computed over one two-dimensional space of R rows by C columns: C is
the last dimension of its largest values and R the product of the others. Every value in it has a
layout in that space:
    FULL    one value per (row, column): a tensor of shape (..., C) with R rows;
    ROW     one value per row (a reduction over the last dimension, its keepdim form, a target);
    COL     one value per column (a weight of shape (C,), a sum over the rows);
    SCALAR  one value.
The generated code walks the rows; inside a row it runs one or more loops over the columns. A
reduction over the columns gives a ROW value usable only after the loop that computes it, so each
node gets a phase: the column loop it is computed in (FULL) or the row-level position before that
loop (ROW). Sums, maxima and minima over the rows (COL and SCALAR accumulations: a weight's
gradient, a loss) add each row's part into an accumulator; nodes that read an accumulator are
computed once, after the rows ("post"). Nodes that depend only on constants are computed once
before the rows ("pre").

Nodes the generated code cannot compute (matmuls, attention, scans, sorts, other broadcasts) stay
steps of their own, run by the op table's NumPy meanings; a region is cut where such a node reads
one of its values. `partition(graph)` returns the steps in an order that respects every edge.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np

from tritonflow.ir.graph import Graph, Node
from tritonflow.ops.registry import OPS, Kind

# Below this many elements in its space a region is not compiled: at 128K float32 elements (512 KB)
# fusing saves less than a tenth of a millisecond per call, where compiling costs 20-50 ms, so it
# would pay off only after hundreds of calls (measured: a GPT training step at 64K compiled 0.54 s
# and ran 153 ms per step, at 128K 0.30 s and 158 ms).
MIN_REGION_ELEMENTS = 1 << 17


class Layout(enum.Enum):
    SCALAR = "scalar"
    ROW = "row"
    COL = "col"
    FULL = "full"


# dtypes the generated code computes in (half-precision floats stay with NumPy).
SUPPORTED_DTYPES = frozenset({"float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"})

# Elementwise ops the C source writer knows (c_source.py holds their formulas).
ELEMENTWISE = frozenset({
    "add", "sub", "mul", "div", "neg", "abs", "exp", "exp2", "log", "log2", "log1p", "expm1", "sqrt",
    "rsqrt", "sin", "cos", "tanh", "sigmoid", "erf", "relu", "floor", "ceil", "round", "sign", "reciprocal",
    "logical_not", "isnan", "isinf", "isfinite", "cast", "pow", "maximum", "minimum", "eq", "ne", "lt", "le",
    "gt", "ge", "logical_and", "logical_or", "logical_xor", "where",
})
# Ops whose value is worth keeping in a row buffer rather than computing again in a later loop.
EXPENSIVE = frozenset({"exp", "exp2", "log", "log2", "log1p", "expm1", "sin", "cos", "tanh", "sigmoid", "erf",
                       "pow"})
REDUCTIONS = frozenset({"reduce_sum", "reduce_max", "reduce_min"})
_STARTS_A_REGION = ELEMENTWISE | REDUCTIONS | {"iota", "gather"}


@dataclass(frozen=True)
class Space:
    rows: int
    cols: int

    @property
    def elements(self) -> int:
        return self.rows * self.cols

    def layouts(self, shape: tuple) -> list:
        """The layouts a tensor of `shape` can have in this space (two only when R == C)."""
        size = math.prod(shape)
        if size == 1:
            return [Layout.SCALAR]
        found = []
        if shape and shape[-1] == self.cols and size == self.elements:
            found.append(Layout.FULL)
        if size == self.rows:
            found.append(Layout.ROW)
        if shape and shape[-1] == self.cols and size == self.cols:
            found.append(Layout.COL)
        return found


def space_of(shape: tuple) -> Space | None:
    """The space a region anchored at a tensor of `shape` walks, when it is a usable one."""
    if len(shape) < 1 or not all(isinstance(d, int) for d in shape):
        return None
    rows, cols = math.prod(shape[:-1]), shape[-1]
    if cols < 2 or rows * cols < 2:
        return None
    return Space(rows, cols)


@dataclass
class Member:
    """A node computed inside a region."""

    node: Node
    index: int                 # its position in the region (names in the C source)
    layout: Layout
    stage: str                 # "pre" | "row" | "acc" | "post"
    phase: int = 0             # "row": its column loop (FULL) or the row-level point before it (ROW)
    roles: tuple = ()          # per input: the layout it is read with
    kind: str = "op"           # "op" | "alias" (same values: reshape/expand) | "literal" | "iota" | "gather"
                               # | "reduce" (over the columns) | "acc" (over the rows)
    literal: object = None     # "literal": the value
    stored: bool = False       # FULL: kept in a row buffer for later loops


@dataclass
class Region:
    space: Space
    members: list = field(default_factory=list)
    by_id: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)    # outside nodes read (graph inputs, constants, step results)
    outputs: list = field(default_factory=list)   # members whose values leave the region

    def member(self, node: Node) -> Member | None:
        return self.by_id.get(id(node))

    @property
    def loops(self) -> int:
        full = [m.phase for m in self.members if m.stage == "row" and m.layout is Layout.FULL]
        return max(full) + 1 if full else 1

    def has_loop_work(self) -> bool:
        return any(m.layout is Layout.FULL or m.kind == "acc" for m in self.members)


# ---------------------------------------------------------------- admitting nodes

def _supported_dtype(node: Node) -> bool:
    return node.type.dtype.name in SUPPORTED_DTYPES


def _normal_dims(node: Node) -> tuple:
    rank = len(node.inputs[0].shape)
    dims = node.attrs.get("dims")
    if dims is None or dims == ():
        return tuple(range(rank))
    return tuple(sorted(d % rank for d in dims)) if rank else ()


def _role(in_shape: tuple, out_shape: tuple, out_layout: Layout, space: Space) -> Layout | None:
    """How an operand of shape `in_shape` is read when broadcast to `out_shape` (None: a
    broadcast the loops cannot express, such as (B, 1, C) against (B, T, C))."""
    padded = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
    if len(padded) != len(out_shape):
        return None
    if math.prod(padded) == 1:
        return Layout.SCALAR
    if tuple(padded) == tuple(out_shape):
        return out_layout
    if out_layout is Layout.FULL:
        if padded[-1] == 1 and tuple(padded[:-1]) == tuple(out_shape[:-1]):
            return Layout.ROW
        if padded[-1] == space.cols and all(d == 1 for d in padded[:-1]):
            return Layout.COL
    return None


class _Builder:
    """Grows one region node by node (`admit`), in the graph's order."""

    def __init__(self, space: Space) -> None:
        self.region = Region(space)

    def _reads_ok(self, node: Node, roles: tuple) -> bool:
        for inp, role in zip(node.inputs, roles):
            m = self.region.member(inp)
            if m is not None and m.kind != "literal" and m.layout is not role:
                return False
        return True

    def _stage(self, node: Node, layout: Layout) -> tuple | None:
        """(stage, phase) of a node computed from its inputs elementwise, or None when it would
        read a value it cannot see (a ROW or FULL value from after the rows)."""
        stages = [m for m in (self.region.member(i) for i in node.inputs) if m is not None and m.kind != "literal"]
        late = [m for m in stages if m.stage in ("acc", "post")]
        if late:
            if layout not in (Layout.SCALAR, Layout.COL):
                return None
            if any(m.stage == "row" and m.layout is not Layout.COL for m in stages):
                return None
            if any(m.stage == "row" and _reads_rows(self.region, m) for m in stages):
                return None
            return "post", 0
        if layout is Layout.SCALAR and all(m.stage == "pre" for m in stages) and \
                all(self.region.member(i) is not None or math.prod(i.shape) == 1 for i in node.inputs):
            return "pre", 0
        return "row", max((m.phase for m in stages if m.stage == "row"), default=0)

    def admit(self, node: Node) -> Member | None:
        if not _supported_dtype(node) or not all(_supported_dtype(i) for i in node.inputs):
            return None
        space = self.region.space
        op = node.op
        index = len(self.region.members)
        if op == "full":
            layouts = space.layouts(node.shape)
            if not layouts:
                return None
            return self._add(Member(node, index, layouts[0], "pre", kind="literal", literal=node.attrs["value"]))
        if op == "constant":
            value = np.asarray(node.attrs["value"])
            if value.size != 1:
                return None
            return self._add(Member(node, index, Layout.SCALAR, "pre", kind="literal", literal=value.reshape(()).item()))
        if op == "iota":
            layouts = space.layouts(node.shape)
            rank, dim = len(node.shape), node.attrs["dim"] % max(len(node.shape), 1)
            if Layout.FULL not in layouts or not (dim == rank - 1 or (rank == 2 and dim == 0)):
                return None
            return self._add(Member(node, index, Layout.FULL, "row", kind="iota", literal=dim == rank - 1))
        if op in ELEMENTWISE:
            return self._elementwise(node, index)
        if op in ("reshape", "expand"):
            return self._view(node, index)
        if op in REDUCTIONS:
            return self._reduction(node, index)
        if op == "gather":
            return self._gather(node, index)
        return None

    def _add(self, member: Member) -> Member:
        self.region.members.append(member)
        self.region.by_id[id(member.node)] = member
        return member

    def _out_layout(self, node: Node) -> Layout | None:
        layouts = self.region.space.layouts(node.shape)
        if Layout.FULL in layouts:
            return Layout.FULL
        if len(layouts) == 1:
            return layouts[0]
        if not layouts:
            return None
        # ROW or COL (R == C): the layout of the operands of the same shape computed here.
        same = {m.layout for m in (self.region.member(i) for i in node.inputs)
                if m is not None and m.kind != "literal" and tuple(m.node.shape) == tuple(node.shape)}
        return same.pop() if len(same) == 1 else None

    def _elementwise(self, node: Node, index: int) -> Member | None:
        if OPS[node.op].kind is not Kind.ELEMENTWISE or not _has_c_meaning(node):
            return None
        layout = self._out_layout(node)
        if layout is None:
            return None
        roles = tuple(_role(i.shape, node.shape, layout, self.region.space) for i in node.inputs)
        if any(r is None for r in roles) or not self._reads_ok(node, roles):
            return None
        where = self._stage(node, layout)
        if where is None:
            return None
        return self._add(Member(node, index, layout, where[0], where[1], roles))

    def _view(self, node: Node, index: int) -> Member | None:
        (src,) = node.inputs
        m = self.region.member(src)
        if node.op == "reshape":
            layouts = self.region.space.layouts(node.shape)
            if m is not None:
                if m.layout not in layouts:
                    return None
                layout = m.layout
            else:
                layout = self._out_layout(node)
                if layout is None:
                    return None
            roles = (layout,)
        else:
            layout = self._out_layout(node)
            if layout is None:
                return None
            roles = (_role(src.shape, node.shape, layout, self.region.space),)
            if roles[0] is None or not self._reads_ok(node, roles):
                return None
        if m is not None and m.kind == "literal":
            return self._add(Member(node, index, layout, "pre", kind="literal", literal=m.literal))
        where = self._stage(node, layout)
        if where is None:
            return None
        return self._add(Member(node, index, layout, where[0], where[1], roles, kind="alias"))

    def _reduction(self, node: Node, index: int) -> Member | None:
        (src,) = node.inputs
        space = self.region.space
        m = self.region.member(src)
        if m is not None and m.kind == "literal":
            return None
        if m is not None:
            src_layout = m.layout
            if m.stage not in ("row", "pre"):
                return None
        else:
            layouts = space.layouts(src.shape)
            if not layouts:
                return None
            src_layout = Layout.FULL if Layout.FULL in layouts else layouts[0]
        dims, rank = _normal_dims(node), len(src.shape)
        reduced = math.prod(src.shape[d] for d in dims)
        phase = m.phase if m is not None and m.stage == "row" else 0
        if reduced == 1:  # over size-1 dims only: the same values
            layouts = space.layouts(node.shape)
            if src_layout not in layouts:
                return None
            where = self._stage(node, src_layout)
            if where is None:
                return None
            return self._add(Member(node, index, src_layout, where[0], where[1], (src_layout,), kind="alias"))
        if src_layout is Layout.FULL:
            if dims == (rank - 1,):
                return self._add(Member(node, index, Layout.ROW, "row", phase + 1, (Layout.FULL,), kind="reduce"))
            if rank >= 2 and dims == tuple(range(rank - 1)):
                return self._add(Member(node, index, Layout.COL, "acc", 0, (Layout.FULL,), kind="acc"))
            if dims == tuple(range(rank)):
                return self._add(Member(node, index, Layout.SCALAR, "acc", 0, (Layout.FULL,), kind="acc"))
            return None
        if src_layout is Layout.ROW and math.prod(node.shape) == 1:
            return self._add(Member(node, index, Layout.SCALAR, "acc", 0, (Layout.ROW,), kind="acc"))
        return None

    def _gather(self, node: Node, index: int) -> Member | None:
        x, idx = node.inputs
        space = self.region.space
        rank = len(x.shape)
        if rank < 1 or node.attrs["dim"] % rank != rank - 1 or idx.type.dtype.name not in ("int64", "int32"):
            return None
        if Layout.FULL not in space.layouts(x.shape) or len(idx.shape) != rank or idx.shape[-1] != 1 or \
                tuple(idx.shape[:-1]) != tuple(x.shape[:-1]) or Layout.ROW not in space.layouts(idx.shape):
            return None
        roles = (Layout.FULL, Layout.ROW)
        if not self._reads_ok(node, roles):
            return None
        members = [self.region.member(i) for i in node.inputs]
        if any(m is not None and m.stage not in ("row", "pre") for m in members):
            return None
        phase = max((m.phase for m in members if m is not None and m.stage == "row"), default=0)
        return self._add(Member(node, index, Layout.ROW, "row", phase, roles, kind="gather"))


def _worth_compiling(region: Region) -> bool:
    """Whether generated code beats NumPy here: two or more computing nodes fused, or one
    transcendental (libmvec's vector forms are several times faster than NumPy's). One cheap op or
    one reduction alone is a single NumPy pass already, and not worth a compile."""
    computing = [m for m in region.members if m.kind not in ("literal", "alias")]
    return len(computing) >= 2 or any(m.node.op in EXPENSIVE for m in computing)


def _has_c_meaning(node: Node) -> bool:
    """Whether C's operator means what the op's NumPy meaning does on these dtypes: integer powers
    (PyTorch's rules for negative exponents) and float-to-integer casts (NumPy's for NaN and
    overflow) stay NumPy steps."""
    ins = [i.type.dtype for i in node.inputs]
    if node.op == "pow":
        return all(d.is_floating_point for d in ins)
    if node.op == "cast":
        return not (ins[0].is_floating_point and node.type.dtype.is_integer)
    return True


def _reads_rows(region: Region, member: Member) -> bool:
    """Whether a COL member's value depends on a ROW or FULL value (then it is per row, not per column)."""
    for inp in member.node.inputs:
        m = region.member(inp)
        if m is None:
            continue
        if m.layout in (Layout.ROW, Layout.FULL) or (m.layout is Layout.COL and m.stage == "row"
                                                     and _reads_rows(region, m)):
            return True
    return False


# ---------------------------------------------------------------- the partition

def _anchor_space(node: Node) -> Space | None:
    """The space a region started by `node` walks: its own shape (a reduction: its input's)."""
    shape = node.inputs[0].shape if node.op in REDUCTIONS or node.op == "gather" else node.shape
    return space_of(tuple(shape))


def partition(graph: Graph, min_elements: int = MIN_REGION_ELEMENTS) -> list:
    """The graph's nodes as steps: ("node", node) for a NumPy step, ("region", Region) for a C
    loop nest. Constants are never steps (the runner seeds them)."""
    steps: list = []
    open_: _Builder | None = None

    def close() -> None:
        nonlocal open_
        if open_ is None:
            return
        region = open_.region
        open_ = None
        if region.space.elements >= min_elements and region.has_loop_work() and _worth_compiling(region):
            steps.append(("region", region))
        else:
            steps.extend(("node", m.node) for m in region.members if m.node.op != "constant")

    for node in graph.nodes:
        if open_ is not None and open_.admit(node) is not None:
            continue
        if node.op == "constant":
            continue
        if open_ is not None and any(open_.region.member(i) is not None for i in node.inputs):
            close()
        space = _anchor_space(node) if node.op in _STARTS_A_REGION else None
        if space is not None and space.elements >= min_elements:
            trial = _Builder(space)
            if trial.admit(node) is not None and trial.region.members[0].layout is not Layout.SCALAR:
                close()
                open_ = trial
                continue
        steps.append(("node", node))
    close()
    _finish(graph, [s[1] for s in steps if s[0] == "region"])
    return steps


def _finish(graph: Graph, regions: list) -> None:
    """Each region's outside inputs, outputs, and which FULL values are kept for later loops."""
    users: dict[int, list] = {}
    for node in graph.nodes:
        for inp in node.inputs:
            users.setdefault(id(inp), []).append(node)
    returned = {id(n) for n in graph.outputs}
    for region in regions:
        seen = set()
        for m in region.members:
            for inp in m.node.inputs:
                if region.member(inp) is None and id(inp) not in seen:
                    seen.add(id(inp))
                    region.inputs.append(inp)
        region.outputs = [m for m in region.members
                          if id(m.node) in returned or any(region.member(u) is None for u in users.get(id(m.node), ()))]
        _mark_stored(region, users)


def _mark_stored(region: Region, users: dict) -> None:
    """A FULL value read in a loop after its own is kept in a row buffer when computing it again
    would repeat a transcendental; cheaper values are recomputed from the inputs."""
    for m in region.members:
        if m.stage != "row" or m.layout is not Layout.FULL:
            continue
        later = any(u.stage == "row" and u.layout is Layout.FULL and u.phase > m.phase
                    for u in (region.member(n) for n in users.get(id(m.node), ())) if u is not None)
        m.stored = later and _costly(region, m)


def _costly(region: Region, member: Member, depth: int = 0) -> bool:
    if member.node.op in EXPENSIVE:
        return True
    if depth > 12:
        return True
    for inp in member.node.inputs:
        m = region.member(inp)
        if m is not None and m.stage == "row" and m.layout is Layout.FULL and m.phase == member.phase \
                and not m.stored and _costly(region, m, depth + 1):
            return True
    return False
