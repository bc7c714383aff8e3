"""The op table: every primitive declared once with its type rule, meaning, gradient and lowering.

Framework stage: the single source of truth. Composite ops (softmax, layer_norm, ...) are Python
functions over these primitives. The lowering reads each entry's kind and its code-generation
records (codegen_info.py), never the op's name: a new op is one entry.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from tritonflow.ops.codegen_info import (CreationLowering, ReductionLowering, SortLowering, SpellRequest,
                                         ViewLowering)


class Kind(enum.Enum):
    ELEMENTWISE = "elementwise"   # out[i] = f(in0[i], in1[i], ...) after broadcasting
    REDUCTION = "reduction"       # reduces `dims`, optional keepdim
    SCAN = "scan"                 # cumulative op along one dim
    SORT = "sort"                 # a stable sort along one dim; the result is each row's order (int64)
    MOVEMENT = "movement"         # a view: each output element reads one input element (or a fill)
    GATHER = "gather"             # reads input at positions given by an index tensor
    MATMUL = "matmul"             # a template kernel (matmul issue)
    CREATION = "creation"         # no tensor inputs but scalars: iota, full, random
    OPAQUE = "opaque"             # anything else


@dataclass
class OpDef:
    """One primitive. See DESIGN.md, "The op table"."""

    name: str
    kind: Kind
    infer: Callable  # (input_types: list[TensorType], attrs: dict) -> TensorType; raises user errors
    numpy: Callable  # (*arrays, **attrs) -> np.ndarray: the meaning of the op
    vjp: Optional[Callable] = None  # (g, out, *inputs, **attrs) -> tuple of grads (Tensor | None)
    # Elementwise: the Triton expression over {0}, {1}, ... and {dtype} (see codegen_info.py), or a
    # callable (SpellRequest) -> that text for the operand and result dtypes ("{0}": the operand
    # itself, e.g. rounding an integer). MATMUL: the name of the template kernel.
    triton: Union[str, Callable[[SpellRequest], str], None] = None
    samples: Optional[Callable] = None  # (dtype) -> list[(args, attrs)] feeding the generated tests
    differentiable: bool = True
    dtypes: tuple = ()               # dtype names the op accepts; empty = all
    doc: str = ""
    extra: dict = field(default_factory=dict)
    reduction: Optional[ReductionLowering] = None  # REDUCTION: combine, identity, index carrying
    view: Optional[ViewLowering] = None            # MOVEMENT: the index rule
    creation: Optional[CreationLowering] = None    # CREATION: the value at an index
    sort: Optional[SortLowering] = None            # SORT: the sorted dim and the direction
    atomic: Optional[str] = None  # a scatter: its result is input 0 with the last input combined in
    #                               atomically (tl.atomic_<atomic>) at input 1's positions along `dim`

    def __repr__(self) -> str:
        return f"<op {self.name} ({self.kind.value})>"


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} registered twice")
    OPS[op.name] = op
    return op


def unregister(name: str) -> OpDef:
    """Remove an entry (an op registered at run time, e.g. by a test); returns it."""
    return OPS.pop(name)


def get(name: str) -> OpDef:
    return OPS[name]


def attrs_key(attrs: dict) -> Any:
    """A hashable form of an attribute dict (for CSE and caches)."""
    items = []
    for k in sorted(attrs):
        v = attrs[k]
        if hasattr(v, "tobytes"):
            v = (str(v.dtype), v.shape, v.tobytes())
        elif isinstance(v, list):
            v = tuple(v)
        items.append((k, v))
    return tuple(items)
