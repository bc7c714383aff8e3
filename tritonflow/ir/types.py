"""IR stage: the type of a value — a shape (ints or SymPy expressions for dynamic dims) and a dtype."""
from __future__ import annotations

from typing import Union

import sympy

from tritonflow.dtypes import DType

Dim = Union[int, sympy.Expr]
Shape = tuple


def is_static(shape: Shape) -> bool:
    return all(isinstance(d, int) for d in shape)


def numel(shape: Shape) -> Dim:
    total: Dim = 1
    for d in shape:
        total = total * d
    return total


def dim_str(d: Dim) -> str:
    return str(d).replace(" ", "")


def normalize_dim_value(d) -> Dim:
    """Ints stay ints; a SymPy expression that is a number becomes an int."""
    if isinstance(d, sympy.Expr):
        d = sympy.simplify(d) if not d.is_Symbol else d
        if d.is_Integer:
            return int(d)
        return d
    return int(d)


class TensorType:
    """Shape and dtype of one IR value."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: Shape, dtype: DType) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __eq__(self, other) -> bool:
        return isinstance(other, TensorType) and self.dtype is other.dtype and self.shape == other.shape

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype.name))

    def __str__(self) -> str:
        return f"{self.dtype.short}[{','.join(dim_str(d) for d in self.shape)}]"

    __repr__ = __str__
