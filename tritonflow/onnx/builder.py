"""ONNX export stage: the graph under construction — nodes, initializers, fresh names, shape values.

Export walks the final IR and, per node, asks this builder for ONNX nodes. Dims that are SymPy
expressions (dynamic=True, dynamic_axes) become small int64 computations on `Shape` of the graph
input that carries each symbol, so one exported file serves every size, as torch.onnx does.
"""
from __future__ import annotations

import numpy as np
import sympy

from tritonflow.errors import SourceLoc, UnsupportedError
from tritonflow.onnx.types import tensor_proto_of_array


class SymbolSource:
    """Where a symbolic dim can be read at run time: axis `axis` of ONNX value `value`."""

    __slots__ = ("value", "axis")

    def __init__(self, value: str, axis: int) -> None:
        self.value = value
        self.axis = axis


class OnnxGraphBuilder:
    """Accumulates NodeProtos and initializers; hands out unique value names."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self.symbols: dict[sympy.Symbol, SymbolSource] = {}
        self._taken: set[str] = set()
        self._constants: dict[tuple, str] = {}
        self._dims: dict[sympy.Expr, str] = {}
        self.loc: SourceLoc | None = None      # the IR node being exported (doc strings, errors)
        self.label = "graph"

    # ---------------------------------------------------------------- names and nodes

    def reserve(self, name: str) -> str:
        """Claim `name` (a graph input or initializer name); a taken one gets a numeric suffix."""
        candidate, suffix = name, 1
        while candidate in self._taken:
            candidate = f"{name}_{suffix}"
            suffix += 1
        self._taken.add(candidate)
        return candidate

    def is_taken(self, name: str) -> bool:
        return name in self._taken

    def op(self, op_type: str, inputs: list, n_outputs: int = 1, **attrs):
        """Add one ONNX node; returns its output name (a list of names when n_outputs > 1)."""
        from onnx import helper
        outputs = [self.reserve(f"{self.label}_{op_type.lower()}") for _ in range(n_outputs)]
        node = helper.make_node(op_type, list(inputs), outputs, name=self.reserve(f"{self.label}/{op_type}"),
                                **{k: v for k, v in attrs.items() if v is not None})
        if self.loc is not None:
            node.doc_string = self.loc.describe()
        self.nodes.append(node)
        return outputs[0] if n_outputs == 1 else outputs

    def unsupported(self, message: str) -> UnsupportedError:
        return UnsupportedError(f"onnx.export: {message}", loc=self.loc)

    # ---------------------------------------------------------------- constants

    def constant(self, array: np.ndarray) -> str:
        """A Constant node holding `array` (equal small constants share one). Constants are nodes,
        not initializers: initializers are the model's parameters and buffers."""
        from onnx import helper
        array = np.asarray(array)
        key = None
        if array.size <= 64:
            key = (str(array.dtype), array.shape, array.tobytes())
            if key in self._constants:
                return self._constants[key]
        name = self.reserve("const")
        node = helper.make_node("Constant", [], [name], name=self.reserve(f"{name}/Constant"),
                                value=tensor_proto_of_array(array, name))
        self.nodes.append(node)
        if key is not None:
            self._constants[key] = name
        return name

    def initializer(self, array: np.ndarray, name: str) -> str:
        """A named initializer (a parameter or buffer): never shared, even with an equal one."""
        name = self.reserve(name)
        self.initializers.append(tensor_proto_of_array(np.asarray(array), name))
        return name

    def int64s(self, values) -> str:
        return self.constant(np.asarray(list(values), dtype=np.int64))

    def scalar(self, value, dtype) -> str:
        """A 0-d constant of tritonflow dtype `dtype`."""
        return self.constant(np.asarray(value).astype(dtype.np))

    # ---------------------------------------------------------------- shapes and dims

    def shape_value(self, shape) -> str:
        """A 1-D int64 value holding `shape`, whose dims may be SymPy expressions."""
        if all(isinstance(d, (int, np.integer)) for d in shape):
            return self.int64s(int(d) for d in shape)
        parts = [self.int64s([int(d)]) if isinstance(d, (int, np.integer)) else self.dim_value(d) for d in shape]
        return self.op("Concat", parts, axis=0)

    def dim_value(self, expr) -> str:
        """A 1-element int64 value holding one dim (an int or a SymPy expression of the input symbols)."""
        if isinstance(expr, (int, np.integer)) or (isinstance(expr, sympy.Expr) and expr.is_Integer):
            return self.int64s([int(expr)])
        found = self._dims.get(expr)
        if found is None:
            found = self._dim_expression(expr)
            self._dims[expr] = found
        return found

    def _dim_expression(self, expr: sympy.Expr) -> str:
        if expr.is_Symbol:
            source = self.symbols.get(expr)
            if source is None:
                raise self.unsupported(f"the symbolic dim {expr} is not a dim of any graph input")
            return self.op("Shape", [source.value], start=source.axis, end=source.axis + 1)
        if isinstance(expr, sympy.Add):
            return self._fold("Add", expr.args)
        if isinstance(expr, sympy.Mul):
            return self._fold("Mul", expr.args)
        if isinstance(expr, sympy.floor) and isinstance(expr.args[0], sympy.Mul):
            # floor(a / n): dims are non-negative, so ONNX's truncating integer Div is floor division.
            numerator, denominator = expr.args[0].as_numer_denom()
            return self.op("Div", [self.dim_value(sympy.expand(numerator)), self.dim_value(denominator)])
        raise self.unsupported(f"cannot compute the symbolic dim {expr} in ONNX")

    def _fold(self, op_type: str, terms) -> str:
        names = [self.dim_value(t) for t in terms]
        result = names[0]
        for name in names[1:]:
            result = self.op(op_type, [result, name])
        return result
