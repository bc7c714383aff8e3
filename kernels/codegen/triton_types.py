"""Lowering stage: how tritonflow dtypes are spelled in Triton, stored, computed and written as literals.

float16 and bfloat16 are loaded, computed in float32 and rounded once on store.
"""
from __future__ import annotations

import math

import numpy as np

from tritonflow import dtypes as D

STORAGE = {
    "float16": "tl.float16", "bfloat16": "tl.bfloat16", "float32": "tl.float32", "float64": "tl.float64",
    "int8": "tl.int8", "int32": "tl.int32", "int64": "tl.int64", "bool": "tl.int1",
}

COMPUTE = dict(STORAGE, float16="tl.float32", bfloat16="tl.float32")


def storage_type(dtype: D.DType) -> str:
    return STORAGE[dtype.name]


def compute_type(dtype: D.DType) -> str:
    return COMPUTE[dtype.name]


def literal(value, dtype: D.DType) -> str:
    """A Python literal Triton reads as a weakly typed constant (it takes the other operand's type).

    float64 keeps every digit; the other float dtypes, computed in float32, print float32's shortest
    round-trip text."""
    if dtype.is_bool:
        return "True" if bool(value) else "False"
    if dtype.is_integer:
        return str(int(value)) if int(value) >= 0 else f"({int(value)})"
    value = float(value)
    if math.isnan(value):
        return "_NAN"
    if math.isinf(value):
        return "_INF" if value > 0 else "(-_INF)"
    text = repr(value)
    if dtype.name != "float64":
        # Computed in float32: the shortest text that reads back as the same float32 (`1e-05`,
        # not the float64 expansion `9.999999747378752e-06`), kept only if it really does.
        short = str(np.float32(value))
        if np.float32(float(short)) == np.float32(value):
            text = short
    return f"({text})" if value < 0 else text


def round_to(value, dtype: D.DType):
    """A scalar rounded to `dtype` the way storing it would round."""
    return np.asarray(value).astype(dtype.np)[()]
