"""Lowering stage: the expression emitter — one IR value at one index, as Triton source lines.

`Emitter.value(node, index)` returns the Triton expression of `node` at `index` (a tuple of
SymPy index expressions over the kernel's iteration variables). Elementwise, movement, creation
and gather nodes are inlined: their inputs are emitted at the index their entry's rule maps to
and combined with the entry's Triton spelling (tritonflow/ops/codegen_info.py); the emitter looks
at kinds and entries, never at op names. Anything else (graph inputs, constants, nodes another
kernel stored, results of the current kernel's own reductions) is an anchor the kernel context
provides.

Values are common-subexpression-eliminated per scope (a scope is one straight-line region: a
loop body or the whole kernel), so a tensor read by several fused ops is loaded once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import sympy

from tritonflow.kernels.codegen import triton_types as KD
from tritonflow.kernels.codegen import indexing as ix
from tritonflow.errors import LoweringError
from tritonflow.ir.graph import Node
from tritonflow.ops.codegen_info import SpellRequest
from tritonflow.ops.registry import OPS, Kind


class NotFusable(Exception):
    """The value cannot be computed inside this kernel (e.g. a reduction read off its row)."""


@dataclass
class Val:
    text: str                 # a Triton expression (a temporary's name or a literal)
    ctype: str                # its Triton compute dtype
    literal: bool = False     # a Python constant (no shape): stores must broadcast it
    value: object = None      # the literal's value, for constant folding
    shaped: bool = False      # certainly a block (else it may be a scalar: stores broadcast it)


INLINE_KINDS = (Kind.ELEMENTWISE, Kind.MOVEMENT, Kind.CREATION, Kind.GATHER)


def is_trivial_reduction(node: Node) -> bool:
    """A reduction over no elements-per-row beyond one (dims=() or every reduced dim of size 1)."""
    op = OPS.get(node.op)
    if op is None or op.kind is not Kind.REDUCTION:
        return False
    x = node.inputs[0]
    return all(ix.is_one(x.shape[d]) for d in node.attrs["dims"]) or x.type.ndim == 0


def is_trivial_sort(node: Node) -> bool:
    """A sort along a dim of size 1 (or of a 0-d tensor): every position is 0, no kernel needed."""
    op = OPS.get(node.op)
    if op is None or op.kind is not Kind.SORT:
        return False
    x = node.inputs[0]
    return x.type.ndim == 0 or ix.is_one(x.shape[op.sort.dim(node.attrs)])


def reduction_of(node: Node):
    """The ReductionLowering of a reduction node's entry."""
    found = OPS[node.op].reduction
    if found is None:
        raise LoweringError(f"reduction {node.op} has no lowering (its op-table entry sets no `reduction`)")
    return found


def is_inlined(node: Node) -> bool:
    op = OPS.get(node.op)
    if op is None:
        return False
    return op.kind in INLINE_KINDS or is_trivial_reduction(node) or is_trivial_sort(node)


def libdevice_calls(text: str, target) -> str:
    """Triton's interpreter cannot call libdevice: its kernels call triton_helpers' stand-ins."""
    return text.replace("libdevice.", "th.") if target.interpreted else text


def spelling(op, node: Node, in_types: list) -> str:
    """The entry's Triton text for this node's dtypes (see OpDef.triton)."""
    if op.triton is None:
        raise LoweringError(f"elementwise op {node.op} has no Triton spelling (its op-table entry sets no `triton`)")
    if not callable(op.triton):
        return op.triton
    request = SpellRequest(tuple(i.dtype for i in node.inputs), node.dtype, dict(node.attrs), tuple(in_types),
                           KD.compute_type(node.dtype), KD.storage_type(node.dtype))
    return op.triton(request)


class Emitter:
    """Emits lines into one scope of a kernel; `ctx` (a KernelContext) supplies anchors and args."""

    def __init__(self, ctx, indent: str = "    ") -> None:
        self.ctx = ctx
        self.indent = indent
        self.lines: list[str] = []
        self.cse: dict = {}
        self.printer = ix.TritonPrinter()

    # ------------------------------------------------------------ helpers

    def line(self, text: str) -> None:
        self.lines.append(self.indent + text)

    def assign(self, text: str, ctype: str, node: Node, step: str = "", shaped: bool = False) -> Val:
        """A new variable for `node`'s value (named `t4` for %4, with the node as its comment), or
        for a `step` towards it (`t4_in`, no comment)."""
        name = self.ctx.name_for(node, step)
        comment = "" if step else f"  # {self.ctx.describe(node)}"
        self.line(f"{name} = {text}{comment}")
        return Val(name, ctype, shaped=shaped)

    def index_text(self, expr) -> str:
        return self.printer(expr)

    def mask_for(self, expr, conds: tuple) -> Optional[str]:
        parts = []
        symbols = {s.name for s in sympy.sympify(expr).free_symbols}
        for name in self.ctx.masks_for_symbols(symbols):
            if name not in parts:
                parts.append(name)
        for c in conds:
            if c not in parts:
                parts.append(c)
        if not parts:
            return None
        return " & ".join(f"({p})" if " " in p else p for p in parts)

    def load(self, node: Node, ptr: str, offset, conds: tuple) -> Val:
        """`node`'s value read from its buffer `ptr` at `offset`."""
        dtype = node.dtype
        offset = self.ctx.rewrite_offset(offset)
        mask = self.mask_for(offset, conds)
        text = f"tl.load({ptr} + {self.index_text(offset)}"
        if not sympy.sympify(offset).free_symbols:
            # A one-element block, not a 0-d scalar: scalars trip the interpreter's bitwise ops.
            text += " + tl.zeros([1], tl.int32)"
        text += f", mask={mask}, other=0)" if mask else ")"
        if KD.compute_type(dtype) != KD.storage_type(dtype):
            text += f".to({KD.compute_type(dtype)})"
        shaped = bool(sympy.sympify(offset).free_symbols)
        return self.assign(text, KD.compute_type(dtype), node, shaped=shaped)

    # ------------------------------------------------------------ the dispatcher

    def value(self, node: Node, index: tuple, conds: tuple = ()) -> Val:
        index = tuple(sympy.expand(sympy.sympify(i)) for i in index)
        key = (id(node), index, conds)
        found = self.cse.get(key)
        if found is not None:
            return found
        val = self._value(node, index, conds)
        self.cse[key] = val
        return val

    def _value(self, node: Node, index: tuple, conds: tuple) -> Val:
        anchor = self.ctx.anchor_value(self, node, index, conds)
        if anchor is not None:
            return anchor
        if node.op == "constant":
            return self._constant(node, index, conds)
        if is_trivial_reduction(node):
            return self._trivial_reduction(node, index, conds)
        if is_trivial_sort(node):
            self.ctx.describe(node)
            return Val("0", KD.compute_type(node.dtype), True, 0)  # the only position along the dim
        op = OPS[node.op]
        if op.kind is Kind.ELEMENTWISE:
            return self._elementwise(node, op, index, conds)
        if op.kind is Kind.MOVEMENT:
            return self._movement(node, op, index, conds)
        if op.kind is Kind.GATHER:
            return self._gather(node, index, conds)
        if op.kind is Kind.CREATION:
            return self._creation(node, op, index, conds)
        raise NotFusable(f"{node.op} is not an inlinable op")

    # ------------------------------------------------------------ leaves

    def _constant(self, node: Node, index: tuple, conds: tuple) -> Val:
        value = node.attrs["value"]
        self.ctx.constants[id(node)] = node
        if value.ndim == 0 or value.size == 1:
            scalar = np.asarray(value).reshape(())[()]
            return Val(KD.literal(scalar, node.dtype), KD.compute_type(node.dtype), True, scalar)
        return self.load(node, self.ctx.pointer(node), ix.linearize(index, node.shape), conds)

    def _creation(self, node: Node, op, index: tuple, conds: tuple) -> Val:
        rule = op.creation
        if rule is None:
            raise LoweringError(f"creation op {node.op} has no lowering (its op-table entry sets no `creation`)")
        ctype = KD.compute_type(node.dtype)
        if rule.constant is not None:
            self.ctx.describe(node)  # folded into a literal: still listed, its users name it
            scalar = KD.round_to(rule.constant(node.attrs), node.dtype)
            return Val(KD.literal(scalar, node.dtype), ctype, True, scalar)
        position = sympy.expand(sympy.sympify(rule.position(index, node.shape, node.attrs)))
        if rule.template is None:
            if position.is_number:
                self.ctx.describe(node)
                scalar = KD.round_to(int(position), node.dtype)
                return Val(KD.literal(scalar, node.dtype), ctype, True, scalar)
            text = self.index_text(self.ctx.rewrite_offset(position))
            return self.assign(f"({text}).to({ctype})", ctype, node, shaped=True)
        args = [self.value(inp, ix.broadcast_index(index, inp.shape), conds) for inp in node.inputs]
        position = self.ctx.rewrite_offset(position)
        text = self.index_text(position)
        if position.is_number:
            # A one-element block whether the inputs are literals, scalars or loaded blocks.
            text = f"(tl.zeros([1], tl.int64) + {text})"
        source = rule.template.format(*[a.text for a in args], position=text, **node.attrs)
        return self.assign(source, ctype, node, shaped=not position.is_number)

    def _trivial_reduction(self, node: Node, index: tuple, conds: tuple) -> Val:
        x = node.inputs[0]
        dims = node.attrs["dims"]
        if node.attrs["keepdim"] or x.type.ndim == 0:
            in_index = index if x.type.ndim else ()
        else:
            it = iter(index)
            in_index = tuple(sympy.Integer(0) if d in dims else next(it) for d in range(x.type.ndim))
        ctype = KD.compute_type(node.dtype)
        if reduction_of(node).carries_index:
            self.ctx.describe(node)
            return Val("0", ctype, True, 0)  # the only position along a size-1 dim
        inner = self.value(x, in_index, conds)
        return self._convert(inner, node, ctype)

    def _convert(self, val: Val, node: Node, ctype: str) -> Val:
        if val.ctype == ctype:
            return val
        if val.literal:
            scalar = KD.round_to(val.value, node.dtype)
            return Val(KD.literal(scalar, node.dtype), ctype, True, scalar)
        return self.assign(f"{val.text}.to({ctype})", ctype, node, shaped=val.shaped)

    # ------------------------------------------------------------ elementwise

    def _elementwise(self, node: Node, op, index: tuple, conds: tuple) -> Val:
        args = [self.value(inp, ix.broadcast_index(index, inp.shape), conds) for inp in node.inputs]
        ctype = KD.compute_type(node.dtype)
        if all(a.literal for a in args):
            return self._fold(node, op, args, ctype)
        template = spelling(op, node, [a.ctype for a in args])
        if template == "{0}":
            self.ctx.describe(node)
            return args[0]  # the identity for these dtypes
        template = libdevice_calls(template, self.ctx.schedule.target)
        texts = [a.text for a in args]
        if template.startswith(("th.", "tl.", "libdevice.")):
            # Function calls need a tensor, not a bare Python number.
            texts = self._tensor_args(args)
        text = template.format(*texts, dtype=ctype)
        if node.dtype.is_bool and not template.startswith("tl.where"):
            text = f"({text})"
        return self.assign(text, ctype, node, shaped=any(a.shaped for a in args))

    def _tensor_args(self, args: list) -> list:
        out = []
        for a in args:
            if a.literal:
                out.append(f"tl.full([1], {a.text}, {a.ctype})")
            else:
                out.append(a.text)
        return out

    def _fold(self, node: Node, op, args: list, ctype: str) -> Val:
        arrays = [np.asarray(a.value).astype(inp.dtype.np) for a, inp in zip(args, node.inputs)]
        self.ctx.describe(node)
        with np.errstate(all="ignore"):
            result = op.numpy(*arrays, **node.attrs)
        scalar = KD.round_to(np.asarray(result).reshape(()), node.dtype)
        return Val(KD.literal(scalar, node.dtype), ctype, True, scalar)

    # ------------------------------------------------------------ movement

    def _movement(self, node: Node, op, index: tuple, conds: tuple) -> Val:
        """A view: the element its entry's index rule reads (pad's border and cat's pieces choose
        among reads by their conditions)."""
        if op.view is None:
            raise LoweringError(f"movement op {node.op} has no lowering (its op-table entry sets no `view`)")
        reads = op.view.reads(node, index, self.ctx.ranges)
        if len(reads) == 1 and not reads[0].conds:
            found = self.value(node.inputs[reads[0].input], reads[0].index, conds)
            self.ctx.describe(node)  # listed although it is only index math: its users name it
            return found
        ctype = KD.compute_type(node.dtype)
        result: Optional[Val] = None
        if op.view.fill is not None:
            scalar = KD.round_to(op.view.fill(node.attrs), node.dtype)
            result = Val(KD.literal(scalar, node.dtype), ctype, True, scalar)
        # From the last read backwards: where(read k applies, read k, what the later reads give).
        for read in reversed(reads):
            if not read.conds:
                result = self.value(node.inputs[read.input], read.index, conds)
                continue
            checks = " & ".join(f"({self.index_text(self.ctx.rewrite_offset(e))} {rel} {self.index_text(bound)})"
                                for e, rel, bound in read.conds)
            cond = self.assign(checks, "tl.int1", node, f"_reads{read.input}")
            val = self.value(node.inputs[read.input], read.index, conds + (cond.text,))
            if result is None:
                result = val
            else:
                result = self.assign(f"tl.where({cond.text}, {val.text}, {result.text})", ctype, node)
        self.ctx.describe(node)
        if result is None:
            # Every piece is empty, so the output is too: no lane reads this value. A literal
            # keeps the (never launched, or fully masked) kernel well formed.
            return Val(KD.literal(0, node.dtype), ctype, True, KD.round_to(0, node.dtype))
        return result

    # ------------------------------------------------------------ gather

    def _gather(self, node: Node, index: tuple, conds: tuple) -> Val:
        x, idx_node = node.inputs
        dim = node.attrs["dim"]
        size = x.shape[dim]
        raw = self.value(idx_node, index, conds)
        if raw.literal and ix.as_expr(size).is_number:
            # A constant index (argmax over a size-1 dim folds to 0) is a constant position: a
            # scalar temporary as the offset made the load's pointer a scalar under a block mask.
            position = int(raw.value)
            x_index = list(index)
            x_index[dim] = sympy.Integer(position + int(size) if position < 0 else position)
            return self.value(x, tuple(x_index), conds)
        size_text = self.index_text(ix.as_expr(size))
        pos = self.assign(f"tl.where({raw.text} < 0, {raw.text} + {size_text}, {raw.text})", raw.ctype, node,
                          "_position")
        symbol = sympy.Symbol(pos.text, integer=True, nonnegative=True)
        self.ctx.ranges.add(symbol, size)
        symbols = set()
        for i in index:
            symbols |= {s.name for s in sympy.sympify(self.ctx.rewrite_offset(i)).free_symbols}
        self.ctx.symbol_masks[pos.text] = list(self.ctx.masks_for_symbols(symbols)) + list(conds)
        x_index = list(index)
        x_index[dim] = symbol
        return self.value(x, tuple(x_index), conds)
