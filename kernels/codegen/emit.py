"""Lowering stage: the expression emitter — one IR value at one index, as Triton source lines.

`Emitter.value(node, index)` returns the Triton expression of `node` at `index` (a tuple of
SymPy index expressions over the kernel's iteration variables). Elementwise, movement, creation
and gather nodes are inlined: their inputs are emitted at the mapped index and combined with the
op table's `triton` template. Anything else (graph inputs, constants, nodes another kernel stored,
results of the current kernel's own reductions) is an anchor the kernel context provides.

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
from tritonflow.ir.graph import Node
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
CUSTOM_SPELLINGS = ("floor_divide", "remainder", "pow", "maximum", "minimum")


def is_trivial_reduction(node: Node) -> bool:
    """A reduction over no elements-per-row beyond one (dims=() or every reduced dim of size 1)."""
    op = OPS.get(node.op)
    if op is None or op.kind is not Kind.REDUCTION:
        return False
    x = node.inputs[0]
    return all(ix.is_one(x.shape[d]) for d in node.attrs["dims"]) or x.type.ndim == 0


def is_inlined(node: Node) -> bool:
    op = OPS.get(node.op)
    if op is None:
        return False
    return op.kind in INLINE_KINDS or is_trivial_reduction(node)


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

    def assign(self, text: str, ctype: str, comment: Optional[str] = None, shaped: bool = False) -> Val:
        name = self.ctx.fresh("tmp")
        suffix = f"  # {comment}" if comment else ""
        self.line(f"{name} = {text}{suffix}")
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

    def load(self, ptr: str, offset, dtype, conds: tuple, comment: str) -> Val:
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
        return self.assign(text, KD.compute_type(dtype), comment, shaped)

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
        op = OPS[node.op]
        if op.kind is Kind.ELEMENTWISE:
            return self._elementwise(node, op, index, conds)
        if op.kind is Kind.MOVEMENT:
            return self._movement(node, index, conds)
        if op.kind is Kind.GATHER:
            return self._gather(node, index, conds)
        if op.kind is Kind.CREATION:
            return self._creation(node, index, conds)
        raise NotFusable(f"{node.op} is not an inlinable op")

    # ------------------------------------------------------------ leaves

    def _constant(self, node: Node, index: tuple, conds: tuple) -> Val:
        value = node.attrs["value"]
        if value.ndim == 0 or value.size == 1:
            scalar = np.asarray(value).reshape(())[()]
            return Val(KD.literal(scalar, node.dtype), KD.compute_type(node.dtype), True, scalar)
        ptr = self.ctx.pointer(node)
        offset = ix.linearize(index, node.shape)
        return self.load(ptr, offset, node.dtype, conds, self.ctx.describe(node))

    def _creation(self, node: Node, index: tuple, conds: tuple) -> Val:
        ctype = KD.compute_type(node.dtype)
        comment = self.ctx.describe(node)
        if node.op == "full":
            scalar = KD.round_to(node.attrs["value"], node.dtype)
            return Val(KD.literal(scalar, node.dtype), ctype, True, scalar)
        if node.op == "iota":
            position = index[node.attrs["dim"]]
            if position.is_number:
                scalar = KD.round_to(int(position), node.dtype)
                return Val(KD.literal(scalar, node.dtype), ctype, True, scalar)
            position = self.ctx.rewrite_offset(position)
            return self.assign(f"({self.index_text(position)}).to({ctype})", ctype, comment, True)
        if node.op == "philox_uniform":
            seed = self.value(node.inputs[0], (), conds)
            offset = self.value(node.inputs[1], (), conds)
            flat = self.ctx.rewrite_offset(ix.linearize(index, node.shape))
            counter = f"{offset.text} + {self.index_text(flat)}"
            if flat.is_number:
                # A one-element block whether the offset is a literal, a scalar or a loaded block.
                counter = f"tl.zeros([1], tl.int64) + {offset.text} + {self.index_text(flat)}"
            return self.assign(f"th.philox_uniform({seed.text}, {counter}, {node.attrs.get('lane', 0)})",
                               ctype, comment, not flat.is_number)
        raise NotFusable(f"no lowering for creation op {node.op}")

    def _trivial_reduction(self, node: Node, index: tuple, conds: tuple) -> Val:
        x = node.inputs[0]
        dims = node.attrs["dims"]
        if node.attrs["keepdim"] or x.type.ndim == 0:
            in_index = index if x.type.ndim else ()
        else:
            it = iter(index)
            in_index = tuple(sympy.Integer(0) if d in dims else next(it) for d in range(x.type.ndim))
        ctype = KD.compute_type(node.dtype)
        if node.op in ("argmax", "argmin"):
            return Val("0", ctype, True, 0)
        inner = self.value(x, in_index, conds)
        return self._convert(inner, node, ctype)

    def _convert(self, val: Val, node: Node, ctype: str) -> Val:
        if val.ctype == ctype:
            return val
        if val.literal:
            scalar = KD.round_to(val.value, node.dtype)
            return Val(KD.literal(scalar, node.dtype), ctype, True, scalar)
        return self.assign(f"{val.text}.to({ctype})", ctype, shaped=val.shaped)

    # ------------------------------------------------------------ elementwise

    def _elementwise(self, node: Node, op, index: tuple, conds: tuple) -> Val:
        args = [self.value(inp, ix.broadcast_index(index, inp.shape), conds) for inp in node.inputs]
        ctype = KD.compute_type(node.dtype)
        if all(a.literal for a in args):
            return self._fold(node, op, args, ctype)
        texts = [a.text for a in args]
        comment = self.ctx.describe(node)
        shaped = any(a.shaped for a in args)
        if node.op == "cast":
            return self._cast(node, args[0], comment)
        if node.op in ("floor", "ceil", "round") and not node.dtype.is_floating_point:
            return args[0]  # rounding an integer is the identity (the float intrinsics reject ints)
        template = op.triton
        if template in CUSTOM_SPELLINGS:
            floating = node.inputs[0].dtype.is_floating_point
            helper = {
                "floor_divide": "floor_divide_float" if floating else "floor_divide_int",
                "remainder": "remainder_float" if floating else "remainder_int",
                "pow": "pow_float" if floating else "pow_int",
                "maximum": "maximum", "minimum": "minimum",
            }[template]
            return self.assign(f"th.{helper}({', '.join(self._tensor_args(args))})", ctype, comment, shaped)
        if template is None:
            raise NotFusable(f"elementwise op {node.op} has no Triton spelling")
        if node.op == "neg" and node.dtype.is_floating_point:
            # Triton spells `-x` as `0 - x`, which gives +0.0 for x == 0.0; NumPy gives -0.0.
            template = "{0} * -1.0"
        template = template.replace("libdevice.", "th.")
        if ctype == "tl.float64":
            # tl.sqrt_rn takes float32 only; float64 tl.sqrt is already correctly rounded.
            template = template.replace("tl.sqrt_rn(", "tl.sqrt(")
        if template.startswith("th.") or template.startswith("tl."):
            # Function calls need a tensor, not a bare Python number.
            texts = self._tensor_args(args)
        text = template.format(*texts, dtype=ctype)
        if node.dtype.is_bool and not template.startswith("tl.where"):
            text = f"({text})"
        return self.assign(text, ctype, comment, shaped)

    def _tensor_args(self, args: list) -> list:
        out = []
        for a in args:
            if a.literal:
                out.append(f"tl.full([1], {a.text}, {a.ctype})")
            else:
                out.append(a.text)
        return out

    def _cast(self, node: Node, arg: Val, comment: str) -> Val:
        target = node.attrs["dtype"]
        ctype = KD.compute_type(target)
        source_dtype = node.inputs[0].dtype
        if target.is_bool:
            return self.assign(f"{arg.text} != 0", ctype, comment, arg.shaped)
        text = arg.text
        if source_dtype.is_bool:
            text = f"{text}.to(tl.int8)"
        if target.name == "bfloat16" and arg.ctype != "tl.float32":
            # Through float32, as ml_dtypes rounds (the spec); Triton's interpreter also converts
            # only float32 to bfloat16 by value (from ints and float64 it reinterprets the bits).
            text = f"{text}.to(tl.float32)"
        text = f"{text}.to({KD.storage_type(target)})"
        if KD.storage_type(target) != ctype:
            text = f"{text}.to({ctype})"  # round to float16/bfloat16 now, compute on in float32
        return self.assign(text, ctype, comment, arg.shaped)

    def _fold(self, node: Node, op, args: list, ctype: str) -> Val:
        arrays = [np.asarray(a.value).astype(inp.dtype.np) for a, inp in zip(args, node.inputs)]
        with np.errstate(all="ignore"):
            result = op.numpy(*arrays, **node.attrs)
        scalar = KD.round_to(np.asarray(result).reshape(()), node.dtype)
        return Val(KD.literal(scalar, node.dtype), ctype, True, scalar)

    # ------------------------------------------------------------ movement

    def _movement(self, node: Node, index: tuple, conds: tuple) -> Val:
        x = node.inputs[0]
        ranges = self.ctx.ranges
        a = node.attrs
        if node.op == "reshape":
            return self.value(x, ix.reshape_index(index, node.shape, x.shape, ranges), conds)
        if node.op == "permute":
            return self.value(x, ix.permute_index(index, a["perm"]), conds)
        if node.op == "expand":
            return self.value(x, ix.expand_index(index, x.shape), conds)
        if node.op == "slice":
            return self.value(x, ix.slice_index(index, a["start"], a["step"]), conds)
        if node.op == "pad":
            return self._pad(node, index, conds)
        if node.op == "cat":
            return self._cat(node, index, conds)
        raise NotFusable(f"no lowering for movement op {node.op}")

    def _pad(self, node: Node, index: tuple, conds: tuple) -> Val:
        x = node.inputs[0]
        inner_index, checks = [], []
        for i, (lo, hi), size in zip(index, node.attrs["pads"], x.shape):
            inner_index.append(i - lo)
            if lo:
                checks.append(f"({self.index_text(self.ctx.rewrite_offset(i))} >= {lo})")
            if hi:
                checks.append(f"({self.index_text(self.ctx.rewrite_offset(i))} < {self.index_text(size + lo)})")
        ctype = KD.compute_type(node.dtype)
        pad_value = KD.literal(KD.round_to(node.attrs["value"], node.dtype), node.dtype)
        if not checks:
            return self.value(x, tuple(inner_index), conds)
        cond = self.assign(" & ".join(checks), "tl.int1")
        inner = self.value(x, tuple(inner_index), conds + (cond.text,))
        return self.assign(f"tl.where({cond.text}, {inner.text}, {pad_value})", ctype, self.ctx.describe(node))

    def _cat(self, node: Node, index: tuple, conds: tuple) -> Val:
        dim = node.attrs["dim"]
        position = index[dim]
        pos_text = self.index_text(self.ctx.rewrite_offset(position))
        pieces = []
        offset = sympy.Integer(0)
        for inp in node.inputs:
            size = ix.as_expr(inp.shape[dim])
            pieces.append((inp, offset, size))
            offset = offset + size
        ctype = KD.compute_type(node.dtype)
        # Build the selection from the last piece backwards: where(in piece k, piece k, rest).
        result: Optional[Val] = None
        for inp, start, size in reversed(pieces):
            if size == 0:
                continue
            inner_index = list(index)
            inner_index[dim] = position - start
            cond = self.assign(f"({pos_text} >= {self.index_text(start)}) & ({pos_text} < "
                               f"{self.index_text(start + size)})", "tl.int1")
            val = self.value(inp, tuple(inner_index), conds + (cond.text,))
            if result is None:
                result = val
            else:
                result = self.assign(f"tl.where({cond.text}, {val.text}, {result.text})", ctype)
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
        pos = self.assign(f"tl.where({raw.text} < 0, {raw.text} + {size_text}, {raw.text})", raw.ctype)
        symbol = sympy.Symbol(pos.text, integer=True, nonnegative=True)
        self.ctx.ranges.add(symbol, size)
        symbols = set()
        for i in index:
            symbols |= {s.name for s in sympy.sympify(self.ctx.rewrite_offset(i)).free_symbols}
        self.ctx.symbol_masks[pos.text] = list(self.ctx.masks_for_symbols(symbols)) + list(conds)
        x_index = list(index)
        x_index[dim] = symbol
        return self.value(x, tuple(x_index), conds)
