"""ONNX import stage: the table of ONNX operators the importer runs, and what a handler is handed.

A handler turns one ONNX node into tritonflow ops: `handler(node: NodeCall) -> Tensor | list`.
`NodeCall.tensor(i)` is input i as a Tensor; `NodeCall.static(i)` is input i as a NumPy array for
arguments that must be known while tracing (a Reshape's shape, a Slice's starts): constants,
initializers that are not floats, and anything computed from them and from input shapes.
An optional `check(attrs, opset)` rejects attribute values a handler does not support when the
file is loaded, before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from tritonflow.errors import UnsupportedError


@dataclass
class OpHandler:
    op_type: str
    run: Callable
    check: Optional[Callable] = None   # (attrs, opset) -> None | reason it cannot run


HANDLERS: dict[str, OpHandler] = {}


def handles(*op_types: str, check: Callable | None = None):
    """Register the decorated function as the handler of `op_types`."""
    def register(fn):
        for op_type in op_types:
            if op_type in HANDLERS:
                raise ValueError(f"ONNX op {op_type} registered twice")
            HANDLERS[op_type] = OpHandler(op_type, fn, check)
        return fn
    return register


class NodeCall:
    """One ONNX node being run: its attributes, opset and input values."""

    def __init__(self, op_type: str, label: str, attrs: dict, opset: int, values: list, n_outputs: int,
                 as_tensor: Callable, as_static: Callable) -> None:
        self.op_type = op_type
        self.label = label          # "op Reshape (node 'reshape_3', #12)": for error messages
        self.attrs = attrs
        self.opset = opset
        self.values = values        # one Tensor (or None for an omitted optional input) per input
        self.n_outputs = n_outputs
        self._as_tensor = as_tensor
        self._as_static = as_static

    @property
    def n_inputs(self) -> int:
        return len(self.values)

    def has(self, index: int) -> bool:
        return index < len(self.values) and self.values[index] is not None

    def tensor(self, index: int):
        if not self.has(index):
            return None
        return self._as_tensor(self.values[index])

    def tensors(self) -> list:
        return [self.tensor(i) for i in range(len(self.values)) if self.has(i)]

    def static(self, index: int, what: str) -> np.ndarray | None:
        """Input `index` as a NumPy array; an UnsupportedError when it is only known at run time."""
        if not self.has(index):
            return None
        array = self._as_static(self.values[index])
        if array is None:
            raise self.error(f"its {what} (input {index}) must be computable from constants and input shapes "
                             f"while tracing, but it depends on the values of the graph's inputs")
        return array

    def ints(self, index: int, what: str) -> list[int] | None:
        array = self.static(index, what)
        return None if array is None else [int(v) for v in np.asarray(array).reshape(-1)]

    def attr(self, name: str, default=None):
        return self.attrs.get(name, default)

    def error(self, message: str) -> UnsupportedError:
        return UnsupportedError(f"onnx.load: {self.label}: {message}")
