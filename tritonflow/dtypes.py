"""Data types and the promotion rules.

Framework stage: shared. Promotion follows the Python array API standard within a category
(bool < integer < floating) and PyTorch across categories (int tensor + float tensor -> the float
dtype). Python scalars are weak: they take the tensor's dtype when their category fits, so
`f16_tensor * 2.0` stays float16 and `int8_tensor + 1` stays int8.

The table, written down (row op column; symmetric):

            bool  int8  int32 int64  f16   bf16  f32   f64
    bool    bool  int8  int32 int64  f16   bf16  f32   f64
    int8          int8  int32 int64  f16   bf16  f32   f64
    int32               int32 int64  f16   bf16  f32   f64
    int64                     int64  f16   bf16  f32   f64
    f16                              f16   f32   f32   f64
    bf16                                   bf16  f32   f64
    f32                                          f32   f64
    f64                                                f64

Python scalars: bool takes any tensor dtype; int takes int and float dtypes (bool tensor + int
-> int64); float takes float dtypes (bool/int tensor + float -> the default float, float32).
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from tritonflow.errors import DTypeError


class DType:
    """One tritonflow dtype: its name, short IR spelling, NumPy dtype and category."""

    __slots__ = ("name", "short", "np", "category", "itemsize", "rank")

    def __init__(self, name: str, short: str, np_dtype, category: str, rank: int) -> None:
        self.name = name
        self.short = short
        self.np = np.dtype(np_dtype)
        self.category = category  # "bool" | "int" | "float"
        self.itemsize = self.np.itemsize
        self.rank = rank

    @property
    def is_floating_point(self) -> bool:
        return self.category == "float"

    @property
    def is_integer(self) -> bool:
        return self.category == "int"

    @property
    def is_bool(self) -> bool:
        return self.category == "bool"

    @property
    def is_low_precision(self) -> bool:
        """float16 and bfloat16 compute in float32 and round on store."""
        return self.name in ("float16", "bfloat16")

    def __repr__(self) -> str:
        return f"tritonflow.{self.name}"

    def __reduce__(self):
        return (from_name, (self.name,))


bool_ = DType("bool", "b8", np.bool_, "bool", 0)
int8 = DType("int8", "i8", np.int8, "int", 1)
int32 = DType("int32", "i32", np.int32, "int", 2)
int64 = DType("int64", "i64", np.int64, "int", 3)
float16 = DType("float16", "f16", np.float16, "float", 4)
bfloat16 = DType("bfloat16", "bf16", ml_dtypes.bfloat16, "float", 4)
float32 = DType("float32", "f32", np.float32, "float", 5)
float64 = DType("float64", "f64", np.float64, "float", 6)

ALL_DTYPES = (bool_, int8, int32, int64, float16, bfloat16, float32, float64)
FLOAT_DTYPES = (float16, bfloat16, float32, float64)
INT_DTYPES = (int8, int32, int64)

DEFAULT_FLOAT = float32
DEFAULT_INT = int64

# PyTorch's short names: `tritonflow.half`, `Tensor.double()`, `Module.float()`.
SHORT_NAMES = {"half": float16, "bfloat16": bfloat16, "float": float32, "double": float64, "long": int64,
               "int": int32, "bool": bool_}

_BY_NAME = {d.name: d for d in ALL_DTYPES}
_BY_NAME.update(SHORT_NAMES)
_BY_NAME["bool_"] = bool_
_BY_NUMPY = {d.np: d for d in ALL_DTYPES}


def from_name(name: str) -> DType:
    return _BY_NAME[name]


def as_dtype(value) -> DType:
    """Accept a DType, a name, a NumPy dtype or a Python type (`float`, `int`, `bool`)."""
    if isinstance(value, DType):
        return value
    if value is float:
        return DEFAULT_FLOAT
    if value is int:
        return DEFAULT_INT
    if value is bool:
        return bool_
    if isinstance(value, str) and value in _BY_NAME:
        return _BY_NAME[value]
    torch_name = getattr(value, "__module__", None) == "torch" or type(value).__name__ == "dtype"
    if torch_name and str(value).startswith("torch."):
        name = str(value)[len("torch."):]
        if name in _BY_NAME:
            return _BY_NAME[name]
    try:
        np_dtype = np.dtype(value)
    except TypeError:
        np_dtype = None
    if np_dtype is not None and np_dtype in _BY_NUMPY:
        return _BY_NUMPY[np_dtype]
    supported = ", ".join(d.name for d in ALL_DTYPES)
    raise DTypeError(f"unsupported dtype {value!r}; tritonflow supports {supported}")


def from_numpy_dtype(np_dtype) -> DType:
    np_dtype = np.dtype(np_dtype)
    if np_dtype in _BY_NUMPY:
        return _BY_NUMPY[np_dtype]
    # NumPy's other widths map to the nearest tritonflow dtype on import.
    if np_dtype.kind == "f":
        return float64 if np_dtype.itemsize > 4 else float32
    if np_dtype.kind in "iu":
        return int64 if np_dtype.itemsize > 4 or np_dtype.kind == "u" else int32
    raise DTypeError(f"NumPy dtype {np_dtype} has no tritonflow equivalent")


def promote_types(a: DType, b: DType) -> DType:
    """Promotion of two tensor dtypes (see the table in the module docstring)."""
    if a is b:
        return a
    if a.category != b.category:
        # Across categories the higher category wins, keeping its own dtype (PyTorch's rule).
        order = {"bool": 0, "int": 1, "float": 2}
        return a if order[a.category] > order[b.category] else b
    if a.category == "float" and {a.name, b.name} == {"float16", "bfloat16"}:
        return float32
    return a if a.rank >= b.rank else b


def scalar_category(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    raise DTypeError(f"expected a Python number, got {type(value).__name__}")


def promote_with_scalar(tensor_dtype: DType, value) -> DType:
    """The result dtype of `tensor op scalar` with the scalar weak."""
    category = scalar_category(value)
    order = {"bool": 0, "int": 1, "float": 2}
    if order[category] <= order[tensor_dtype.category]:
        return tensor_dtype
    return DEFAULT_FLOAT if category == "float" else DEFAULT_INT


def dtype_of_scalar(value) -> DType:
    """A lone Python scalar as a tensor: bool, int64 or float32 (PyTorch's defaults)."""
    category = scalar_category(value)
    return {"bool": bool_, "int": DEFAULT_INT, "float": DEFAULT_FLOAT}[category]


def finfo(dtype) -> "np.finfo | ml_dtypes.finfo":
    dtype = as_dtype(dtype)
    if dtype is bfloat16:
        return ml_dtypes.finfo(ml_dtypes.bfloat16)
    return np.finfo(dtype.np)


def iinfo(dtype) -> np.iinfo:
    return np.iinfo(as_dtype(dtype).np)
