"""ONNX interop stage: element types — tritonflow dtypes and ONNX TensorProto data types, both ways.

The `onnx` package is imported lazily (it is an optional extra): `import tritonflow.onnx` stays light.
"""
from __future__ import annotations

import numpy as np

from tritonflow import dtypes as D
from tritonflow.errors import DTypeError

# TensorProto.DataType numbers (fixed by the ONNX standard; onnx.TensorProto spells them by name).
_ONNX_NUMBER = {"float32": 1, "int8": 3, "int32": 6, "int64": 7, "bool": 9, "float16": 10,
                "float64": 11, "bfloat16": 16}
SUPPORTED_ELEMENT_TYPES = frozenset(_ONNX_NUMBER.values())
_FROM_ONNX = {number: D.from_name(name) for name, number in _ONNX_NUMBER.items()}
_ONNX_NAMES = {1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
               9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64", 14: "complex64",
               15: "complex128", 16: "bfloat16"}


def onnx_type_of(dtype: D.DType) -> int:
    """The TensorProto data type number of a tritonflow dtype."""
    return _ONNX_NUMBER[dtype.name]


def onnx_type_name(number: int) -> str:
    return _ONNX_NAMES.get(number, f"data type {number}")


def dtype_of_onnx(number: int, where: str) -> D.DType:
    """The tritonflow dtype of an ONNX element type; `where` names the node or value for the error."""
    dtype = _FROM_ONNX.get(number)
    if dtype is None:
        raise DTypeError(f"{where}: ONNX element type {onnx_type_name(number)} has no tritonflow dtype "
                         f"(supported: {', '.join(sorted(_ONNX_NUMBER))})")
    return dtype


def array_of_tensor_proto(proto, where: str) -> np.ndarray:
    """A TensorProto (an initializer or a Constant's value) as a NumPy array in a tritonflow dtype."""
    from onnx import numpy_helper
    dtype = dtype_of_onnx(proto.data_type, where)
    array = numpy_helper.to_array(proto)
    return np.array(array, dtype=dtype.np)  # C-ordered and owned (ascontiguousarray would make 0-d 1-d)


def tensor_proto_of_array(array: np.ndarray, name: str):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.array(array), name)
