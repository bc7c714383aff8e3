"""Core: the numpy backend's row-blocked evaluation — a graph run a block of rows at a time.

The plain evaluator runs each op over whole tensors: a softmax of 4096x1024 floats streams 16 MB
from memory and back for each of its passes. Most large graphs are row-wise, though (softmax, the
normalisations, cross-entropy, elementwise chains, attention over its batch): every large value
shares a leading dimension of N rows and row i of each value needs only row i of the values it is
computed from. Such a graph is run here over blocks of rows sized for the CPU's caches, so each op
reads what the op before it has just written, and a block's temporaries are reused from block to
block instead of being fresh memory (page faults) for every op.

Each node gets one of four places in the run:
    "pre"   independent of the rows (weights, constants): computed once, before the blocks;
    "row"   computed block by block (its block of rows from the blocks of its inputs);
    "acc"   a sum/max/min over the row axis (a weight's gradient, a loss): each block's partial
            result combined into one accumulator;
    "post"  anything else (reads an accumulated value, or is not row-wise): computed once, after the
            blocks, on whole arrays. A row value that a post node or the caller needs is written
            into a whole-size array as its blocks are computed.
Values are the op table's meanings of the same nodes, so results equal the plain evaluator's except
the order in which an "acc" sum adds its rows (blocks of pairwise sums, then block after block).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import sympy

from tritonflow.interpreter import call_meaning, direct_meaning, has_symbolic_inputs
from tritonflow.ir.graph import Graph, Node
from tritonflow.ops.registry import OPS, Kind

# Elements of the widest row value in one block: 512 KB of float32, about what the CPU's mid-level
# cache holds beside the block's other values. Measured on a 2-core EPYC: whole 4096x1024 arrays
# spend a third of a softmax's time in page faults (fresh memory for each op), blocks of this size
# none; much smaller blocks pay NumPy's per-call cost (a few microseconds per op and block).
BLOCK_ELEMENTS = 128 * 1024
# A block multiplied by a weight has at least this many rows: BLAS loses speed on thinner products.
MIN_MATMUL_ROWS = 64
# Below this many elements in its largest row value a graph runs on whole arrays: at 1M float32
# elements (4 MB, within the last-level cache) blocks cost more than they save (measured: a
# 1024x1024 layer_norm 2.9 ms whole, 3.7 ms blocked; a 256x8000 cross-entropy 13.8 -> 11.0 ms).
MIN_ROW_ELEMENTS = 2 * 1024 * 1024

_ACCUMULATE = {"reduce_sum": np.add, "reduce_max": np.maximum, "reduce_min": np.minimum}
_SHAPE_ATTR = {"reshape", "expand", "slice"}   # views whose `shape` attribute holds N first (so do creations')
_ATTENTION = {"attention", "attention_lse", "attention_delta", "attention_dq", "attention_dkv"}


@dataclass
class _Step:
    meaning: object        # the op's NumPy meaning for this node (interpreter.direct_meaning)
    node: Node
    inputs: tuple          # slots
    sliced: tuple          # per input: True when a whole-size value is read a block at a time
    attrs: dict
    dtype: np.dtype        # the node's result dtype
    out: int               # its slot
    stored: bool = False   # "row": also written into a whole-size array (read later or returned)
    direct: bool = False   # stored by the ufunc itself (out=), not copied
    same_rows: bool = False  # a creation alike in every row: made once, one row, and broadcast
    block_shape: bool = False  # its `shape` attribute starts with N: a block's has the block's rows


class RowBlockedPlan:
    """`plan(arrays)` runs the graph block by block; `RowBlockedPlan.build(graph)` returns None for
    a graph this does not speed up (no row axis, small values, or few row-wise nodes)."""

    def __init__(self, graph: Graph, rows: int, pre: list, row: list, acc: list, post: list,
                 n_slots: int, template: list, outputs: list, row_inputs: list, frees: dict, n: int) -> None:
        self.graph, self.rows, self.n = graph, rows, n
        self.pre, self.row, self.acc, self.post = pre, row, acc, post
        self.n_slots, self.template, self.outputs = n_slots, template, outputs
        self.row_inputs = row_inputs      # slots of whole row values (inputs, up-front products) read a block at a time
        self.frees = frees                # row step index -> block slots dead after it

    # ------------------------------------------------------------ planning

    @classmethod
    def build(cls, graph: Graph, block_elements: int = BLOCK_ELEMENTS, min_row_elements: int = MIN_ROW_ELEMENTS,
              block_rows: int | None = None) -> "RowBlockedPlan | None":
        """The plan for `graph`, with blocks of `block_rows` rows when given, else of about
        `block_elements` of its widest row value; None when it runs as fast on whole arrays."""
        if has_symbolic_inputs(graph) or not graph.outputs:
            return None
        n = _row_count(graph)
        if n is None:
            return None
        slot_of = {id(node): i for i, node in enumerate(graph.inputs)}
        place: dict[int, str] = {}
        template: list = [None] * len(graph.inputs)
        row_inputs = []
        whole: set[int] = set()    # ids of row values whose whole array exists before the blocks
        for node in graph.inputs:
            if _leads_with(node, n):
                place[id(node)] = "row"
                row_inputs.append(slot_of[id(node)])
                whole.add(id(node))
            else:
                place[id(node)] = "pre"
        steps: dict[str, list] = {"pre": [], "row": [], "acc": [], "post": []}
        stored: set[int] = set()   # ids of row nodes whose whole value is needed
        for node in graph.nodes:
            slot_of[id(node)] = len(template)
            template.append(node.attrs["value"] if node.op == "constant" else None)
            if node.op == "constant":
                place[id(node)] = "pre"
                continue
            op = OPS[node.op]
            where, sliced = _place(node, op, place, n)
            if where == "post":
                stored.update(id(i) for i in node.inputs if place[id(i)] == "row")
            place[id(node)] = where
            step = _Step(direct_meaning(node, op), node, tuple(slot_of[id(i)] for i in node.inputs), sliced,
                         node.attrs, node.type.dtype.np, slot_of[id(node)])
            if where == "row" and node.op == "matmul" and all(place[id(i)] == "pre" or id(i) in whole
                                                              for i in node.inputs):
                # A product of whole arrays is one BLAS call up front (BLAS is slower on thin blocks
                # of rows); the blocks then read its rows as they read an input's.
                steps["pre"].append(dataclasses.replace(step, sliced=(False,) * len(node.inputs)))
                whole.add(id(node))
                row_inputs.append(step.out)
                continue
            steps[where].append(step)
        stored.update(id(o) for o in graph.outputs if place[id(o)] == "row")
        widths = [_numel(s.node) // n for s in steps["row"]]
        if not widths or max(widths) * n < min_row_elements or len(steps["row"]) < 2:
            return None
        for step in steps["row"]:
            step.stored = id(step.node) in stored
            step.same_rows = OPS[step.node.op].kind is Kind.CREATION
            step.block_shape = step.same_rows or step.node.op in _SHAPE_ATTR
            # A stored elementwise result is written straight into its whole array: NumPy's ufuncs
            # take `out=`, and with operands of the result's dtype that computes the same values.
            step.direct = step.stored and isinstance(step.meaning, np.ufunc) and step.meaning.nout == 1 and \
                all(i.type.dtype == step.node.type.dtype for i in step.node.inputs)
        rows = block_rows or max(1, block_elements // max(widths))
        if block_rows is None and any(s.node.op == "matmul" for s in steps["row"]):
            rows = max(rows, MIN_MATMUL_ROWS)
        if rows >= n:
            return None
        frees = _block_frees(steps["row"], steps["acc"])
        outputs = [(slot_of[id(o)], o.op == "constant") for o in graph.outputs]
        return cls(graph, rows, steps["pre"], steps["row"], steps["acc"], steps["post"], len(template),
                   template, outputs, row_inputs, frees, n)

    # ------------------------------------------------------------ running

    def __call__(self, arrays: list) -> list:
        env = self.template.copy()
        env[:len(arrays)] = arrays
        with np.errstate(all="ignore"):
            for step in self.pre:
                env[step.out] = _apply(step, [env[i] for i in step.inputs], step.attrs)
            self._blocks(env)
            for step in self.post:
                env[step.out] = _apply(step, [env[i] for i in step.inputs], step.attrs)
        return [np.array(env[i]) if constant else env[i] for i, constant in self.outputs]

    def _blocks(self, env: list) -> None:
        n = self.n
        whole = {s.out: np.empty(s.node.type.shape, s.dtype) for s in self.row if s.stored}
        # A fill or iota alike in every row is made once, one row, and read by each block as a
        # broadcast view (an N x classes int64 iota is never written out).
        one_row = {s.out: _apply(s, [], _block_attrs(s, 1)) for s in self.row if s.same_rows}
        accumulators: dict[int, np.ndarray] = {}
        block = [None] * self.n_slots
        for start in range(0, n, self.rows):
            stop = min(n, start + self.rows)
            rows = stop - start
            for slot in self.row_inputs:
                block[slot] = env[slot][start:stop]
            for k, step in enumerate(self.row):
                values = [env[i][start:stop] if cut else (block[i] if block[i] is not None else env[i])
                          for i, cut in zip(step.inputs, step.sliced)]
                if step.direct:
                    result = whole[step.out][start:stop]
                    _write(step, values, result)
                elif step.out in one_row:
                    result = np.broadcast_to(one_row[step.out], (rows,) + one_row[step.out].shape[1:])
                    if step.stored:
                        whole[step.out][start:stop] = result
                else:
                    result = _apply(step, values, _block_attrs(step, rows))
                    if step.stored:
                        whole[step.out][start:stop] = result
                block[step.out] = result
                for slot in self.frees.get(k, ()):
                    block[slot] = None
            for step in self.acc:
                partial = _partial(step, [block[i] for i in step.inputs], step.attrs)
                found = accumulators.get(step.out)
                accumulators[step.out] = partial if found is None else _ACCUMULATE[step.node.op](found, partial)
            for slot in range(len(block)):
                block[slot] = None
        for step in self.acc:
            value = accumulators[step.out]
            env[step.out] = value if value.dtype == step.dtype else value.astype(step.dtype)
        for slot, value in whole.items():
            env[slot] = value


def _apply(step: _Step, values: list, attrs: dict) -> np.ndarray:
    """The node's meaning on these values, in its dtype (as interpreter.Evaluator runs a node)."""
    result = _partial(step, values, attrs)
    return result if result.dtype == step.dtype else result.astype(step.dtype)


def _write(step: _Step, values: list, out: np.ndarray) -> None:
    call_meaning(OPS[step.node.op], step.meaning, values, {"out": out})


def _partial(step: _Step, values: list, attrs: dict) -> np.ndarray:
    """The node's meaning before the cast to its dtype: a block's partial reduction keeps it (a
    float16 sum accumulates in float32, an integer sum in int64, as the whole-array meaning does)."""
    return call_meaning(OPS[step.node.op], step.meaning, values, attrs)


def _block_attrs(step: _Step, rows: int) -> dict:
    if step.block_shape:
        attrs = dict(step.attrs)
        attrs["shape"] = (rows,) + tuple(attrs["shape"][1:])
        return attrs
    return step.attrs


# ---------------------------------------------------------------- where each node runs

def _row_count(graph: Graph) -> int | None:
    """N: the leading dimension shared by the most input bytes (None when no input has one)."""
    weight: dict[int, int] = {}
    for node in graph.inputs:
        shape = node.type.shape
        if shape and isinstance(shape[0], int) and shape[0] > 1:
            weight[shape[0]] = weight.get(shape[0], 0) + _nbytes(node)
    return max(weight, key=weight.get) if weight else None


def _numel(node: Node) -> int:
    return int(np.prod(node.type.shape, dtype=np.int64))


def _nbytes(node: Node) -> int:
    return _numel(node) * node.type.dtype.np.itemsize


def _leads_with(node: Node, n: int) -> bool:
    shape = node.type.shape
    return len(shape) >= 1 and shape[0] == n


def _aligned(value: Node, user: Node, n: int) -> bool:
    """Whether `value`'s axis 0 is `user`'s row axis (same rank, N long): then a block of `user`
    reads the same block of `value`."""
    return len(value.type.shape) == len(user.type.shape) and _leads_with(value, n)


def _place(node: Node, op, place: dict, n: int) -> tuple:
    """(where the node runs, per input whether a whole pre value is read a block at a time)."""
    kinds = [place[id(i)] for i in node.inputs]
    no_slices = (False,) * len(node.inputs)
    if _same_in_every_row(node, op, n):
        return "row", no_slices        # a fill or an iota along another axis: made a block at a time
    if all(k == "pre" for k in kinds):
        return "pre", no_slices
    if any(k in ("acc", "post") for k in kinds):
        return "post", no_slices
    sliced = _row_wise(node, op, place, n)
    if sliced is not None:
        return "row", sliced
    if node.op in _ACCUMULATE and 0 in _dims(node) and kinds == ["row"]:
        return "acc", no_slices
    return "post", no_slices


def _same_in_every_row(node: Node, op, n: int) -> bool:
    """A creation whose rows are all alike, by its op table record: one value everywhere (a fill) or
    a value not depending on the row index (an iota along a later axis; a cross-entropy's one-hot
    gradient compares an N x classes iota with the targets). Random numbers take inputs."""
    lowering = op.creation
    if op.kind is not Kind.CREATION or node.inputs or lowering is None or not _leads_with(node, n):
        return False
    if lowering.constant is not None:
        return True
    if lowering.position is None:
        return False
    index = sympy.symbols(f"i0:{len(node.type.shape)}", integer=True)
    value = sympy.sympify(lowering.position(index, node.type.shape, node.attrs))
    return index[0] not in value.free_symbols


def _dims(node: Node) -> tuple:
    rank = len(node.inputs[0].type.shape)
    return tuple(d % rank for d in node.attrs["dims"]) if rank else ()


def _row_wise(node: Node, op, place: dict, n: int) -> tuple | None:
    """None unless row i of `node` needs only row i of its row inputs and of the pre values whose
    axis 0 is its row axis (those are read a block at a time: True in the returned tuple), and
    other pre values whole."""
    if not _leads_with(node, n):
        return None
    name, attrs, inputs = node.op, node.attrs, node.inputs
    is_row = [place[id(i)] == "row" for i in inputs]
    if op.kind is Kind.REDUCTION:
        return (False,) if 0 not in _dims(node) else None
    if name == "reshape":            # the rows stay rows when axis 0 keeps its length
        return (False,) if _leads_with(inputs[0], n) else None
    if name == "matmul" and len(node.type.shape) == 2:
        return (False, False) if is_row == [True, False] else None   # a block of rows @ the whole b
    if not all(_aligned(i, node, n) for i, row in zip(inputs, is_row) if row):
        return None
    # Every other row-wise op: each input's axis 0 is the row axis (a block of it), or it broadcasts
    # along axis 0 (length 1, or fewer dimensions) and is read whole.
    sliced = tuple(not row and _aligned(i, node, n) for i, row in zip(inputs, is_row))
    if op.kind is Kind.ELEMENTWISE or name == "matmul":
        return sliced
    along = attrs.get("dim")
    if op.kind in (Kind.SCAN, Kind.SORT, Kind.GATHER) or name == "cat":
        return sliced if along % len(node.type.shape) != 0 and all(
            row or cut for row, cut in zip(is_row, sliced)) else None
    if name == "expand":
        return sliced
    if name == "permute":
        return sliced if attrs["perm"][0] == 0 else None
    if name == "slice":
        return sliced if attrs["start"][0] == 0 and attrs["step"][0] == 1 else None
    if name in _ATTENTION and attrs.get("dropout_p", 0.0) == 0.0:  # philox draws depend on the position
        return sliced if len(node.type.shape) >= 3 else None
    return None


def _block_frees(row: list, acc: list) -> dict:
    """Row step index -> block slots no later row or acc step reads (dropped to keep blocks in cache)."""
    last: dict[int, int] = {}
    for k, step in enumerate(row):
        for i in step.inputs:
            last[i] = k
    held = {i for step in acc for i in step.inputs}
    frees: dict[int, list] = {}
    for slot, k in last.items():
        if slot not in held:
            frees.setdefault(k, []).append(slot)
    return frees
