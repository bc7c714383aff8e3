"""What code generation reads from an op-table entry: the records the entries fill in.

Framework stage (core). An entry says how it lowers as data: strings, and small callables that
build strings or SymPy index expressions. The lowering (tritonflow.kernels) reads these records and
never branches on an op's name, so adding an op is one entry. Nothing here imports the lowering.

Triton text conventions shared by every record:
- `{0}`, `{1}`, ... are the operands' Triton expressions, `{dtype}` the result's Triton compute type;
- `tl.` is triton.language; `libdevice.` a CUDA libdevice function (under Triton's CPU
  interpreter the kernels call a stand-in of the same name instead); `th.` names a helper of
  tritonflow/kernels/triton_helpers.py;
- float16 and bfloat16 values are held in float32 inside a kernel and rounded once when stored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class SpellRequest:
    """What an elementwise spelling may depend on: OpDef.triton, when callable, receives one."""

    in_dtypes: tuple    # the tritonflow DType of each operand
    out_dtype: Any      # the result's DType
    attrs: dict
    in_types: tuple     # the Triton type each operand is held in, e.g. "tl.float32" for a float16
    out_type: str       # the Triton type the result is computed in
    out_storage: str    # the Triton type the result is stored as


@dataclass(frozen=True)
class ReductionLowering:
    """How a reduction combines values. A kernel reduces blocks of a row, then the blocks' results.

    combine: a Triton expression over `a` and `b`, two partial results of the same row, giving
        their combination (`a + b`). With `carries_index` it is instead a predicate: whether value
        `a` is preferred to value `b`; ties (equal values, or NaN and NaN) go to the lower index.
        `combine(a, identity)` must be `a`, and combine must be associative and commutative.
    identity: (DType) -> the Python value masked-out lanes take (sum 0, max -inf), for the dtype
        the values are reduced in (the input's for `carries_index`, else the result's).
    block_reduce: a Triton function `f(block, axis, keep_dims=True)` that reduces a block directly
        (`tl.sum`); None reduces with `tl.reduce` and the combine.
    carries_index: argmax-like: (value, position) pairs are reduced; the result is the position
        along the reduced dim, and a reduction over a size-1 dim is 0.
    """

    combine: str
    identity: Callable[[Any], Any]
    block_reduce: Optional[str] = None
    carries_index: bool = False


@dataclass(frozen=True)
class ViewRead:
    """One input element an output element of a view may read.

    conds: (expression, ">=" or "<", bound) triples over the output index, all of which must hold
    for this read to apply (pad's interior, one piece of a cat)."""

    input: int
    index: tuple
    conds: tuple = ()


@dataclass(frozen=True)
class ViewLowering:
    """A movement op's index rule: views never copy in a kernel, they map indices.

    reads: (node, output index, divide) -> [ViewRead]: the element at the output index is the first
        read whose conditions hold; when `fill` is None some read always does (the last one's
        conditions serve only as its load mask). `divide` has floordiv(expr, d) and modulo(expr, d)
        for integer index arithmetic (the lowering simplifies them with its variables' ranges).
    fill: (attrs) -> the value where no read applies (pad's border), or None.
    conditional: True when some read has conditions: the view is not a plain strided view, so a
        template (matmul) cannot walk through it to a buffer.
    """

    reads: Callable
    fill: Optional[Callable[[dict], Any]] = None
    conditional: bool = False


@dataclass(frozen=True)
class CreationLowering:
    """How a creation op (no tensor operands but 0-d scalars) computes the element at an index.

    constant: (attrs) -> the one value every element has (full); folded into a literal.
    position: (output index, shape, attrs) -> an integer SymPy expression the value depends on.
    template: Triton text over {0}, {1} (the 0-d inputs), {position} and the attrs by name; None:
        the value is `position` itself converted to the result's dtype (iota).
    """

    constant: Optional[Callable[[dict], Any]] = None
    position: Optional[Callable] = None
    template: Optional[str] = None


@dataclass(frozen=True)
class SortLowering:
    """How a sort entry orders each row. The kernel sorts (key, position) pairs, so equal values
    keep their order (stable); the result is the positions in sorted order (int64).

    dim: (attrs) -> the sorted dim. descending: (attrs) -> whether larger values come first.
    The order of values is torch's: NaN above +inf (first when descending), -0.0 equal to 0.0.
    """

    dim: Callable[[dict], int]
    descending: Callable[[dict], bool]
