"""ONNX import stage: `tritonflow.onnx.load(path)` — an ONNX model as a tritonflow nn.Module.

Loading reads and checks the whole file before anything runs: protobuf decoding, onnx.checker,
the opset, every node's operator (and the attribute values a handler rejects), the element types.
The module's forward runs the ONNX nodes in order with tritonflow ops (the handlers in
import_*.py), eagerly or under tritonflow.jit / tritonflow.compile. Float initializers become
Parameters under their ONNX names (dots nest them as submodules, so a tritonflow export loads
back with the original state-dict keys); other initializers and Constant nodes are constants.
Values computed only from constants and input shapes are folded while tracing, so shape
arithmetic (Shape -> Gather -> Concat -> Reshape) becomes static, as it must for tritonflow.
"""
from __future__ import annotations

import os
import re

import numpy as np

from tritonflow.tracer import state as trace_state
from tritonflow.errors import DTypeError, ShapeError, TritonflowError, UnsupportedError
from tritonflow.nn.modules import Module
from tritonflow.nn.parameter import Parameter
from tritonflow.onnx import import_elementwise, import_nn, import_reduce, import_shape  # noqa: F401 (register)
from tritonflow.onnx.import_registry import HANDLERS, NodeCall
from tritonflow.onnx.types import array_of_tensor_proto, dtype_of_onnx
from tritonflow.tensor_class import Tensor

MIN_OPSET = 7
DEFAULT_DOMAINS = ("", "ai.onnx")


class OnnxModelError(TritonflowError, ValueError):
    """An ONNX file that cannot be read: not a model, or one that fails onnx.checker."""


def load(path: str | os.PathLike) -> "OnnxModule":
    """Read and check the ONNX model at `path`; returns an OnnxModule (an nn.Module) running it."""
    return OnnxModule(read_model(path))


def read_model(path: str | os.PathLike):
    import onnx
    from google.protobuf.message import DecodeError
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise OnnxModelError(f"onnx.load: cannot read {path}: {exc.strerror or exc}") from None
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OnnxModelError(f"onnx.load: {path} is not an ONNX model (protobuf decoding failed: {exc})") from None
    if not model.graph.node and not model.graph.output:
        raise OnnxModelError(f"onnx.load: {path} holds no ONNX graph ({len(data)} bytes decoded to an empty model)")
    default_opset(model)   # before the checker: an opset it does not know is this error, not a cryptic one
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OnnxModelError(f"onnx.load: {path} is not a valid ONNX model: {first}") from None
    return model


def default_opset(model) -> int:
    import onnx
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        raise UnsupportedError("onnx.load: the model imports no version of the default ONNX operator set")
    opset = versions[0]
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise UnsupportedError(f"onnx.load: opset {opset} is not supported (tritonflow reads opsets {MIN_OPSET}.."
                               f"{onnx.defs.onnx_opset_version()})")
    return opset


def _node_label(node, index: int) -> str:
    return f"op {node.op_type} (node {node.name or '<unnamed>'!r}, #{index})"


def _attributes(node, label: str) -> dict:
    from onnx import AttributeProto, helper
    attrs = {}
    for attr in node.attribute:
        if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            raise UnsupportedError(f"onnx.load: {label}: subgraph attributes (control flow) are not supported")
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        attrs[attr.name] = value
    return attrs


def _check_nodes(graph, opset: int) -> list:
    """The nodes as (label, attrs); every problem found, in one error, before anything runs."""
    problems, checked = [], []
    for index, node in enumerate(graph.node):
        label = _node_label(node, index)
        if node.domain not in DEFAULT_DOMAINS:
            problems.append(f"{label}: operator domain {node.domain!r} is not supported")
            continue
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            problems.append(f"{label}: unsupported operator {node.op_type}")
            continue
        try:
            attrs = _attributes(node, label)
        except UnsupportedError as exc:
            problems.append(exc.raw_message.removeprefix("onnx.load: "))
            continue
        reason = handler.check(attrs, opset) if handler.check is not None else None
        if reason:
            problems.append(f"{label}: {reason}")
        checked.append((label, attrs))
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise UnsupportedError(f"onnx.load: the model cannot run in tritonflow:\n  {shown}")
    return checked


def _value_type(value_info, where: str):
    """(dtype, shape with None for a symbolic or unknown dim) of a graph input or output."""
    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type":
        raise UnsupportedError(f"onnx.load: {where} {value_info.name!r} is a {kind or 'value of no type'}; "
                               f"only tensors are supported")
    tensor_type = value_info.type.tensor_type
    dtype = dtype_of_onnx(tensor_type.elem_type, f"onnx.load: {where} {value_info.name!r}")
    if not tensor_type.HasField("shape"):
        return dtype, None
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
    return dtype, shape


def _attribute_path(name: str, taken: set) -> tuple:
    """A module path for an initializer name: dotted identifiers nest ("0.weight"), anything else
    becomes one identifier ("onnx::MatMul_12" -> "onnx__MatMul_12")."""
    parts = name.split(".")
    if not all(re.fullmatch(r"[A-Za-z0-9_]+", p) for p in parts):
        parts = [re.sub(r"[^A-Za-z0-9_]", "_", name) or "param"]
    path, suffix = tuple(parts), 1
    while ".".join(path) in taken:
        path = tuple(parts[:-1]) + (f"{parts[-1]}_{suffix}",)
        suffix += 1
    taken.add(".".join(path))
    return path


class OnnxModule(Module):
    """An ONNX graph run with tritonflow ops: call it like the model (positional inputs, in the
    graph's order); a single output is returned as a Tensor, several as a tuple."""

    def __init__(self, model) -> None:
        super().__init__()
        graph = model.graph
        opset = default_opset(model)
        checked = _check_nodes(graph, opset)
        object.__setattr__(self, "opset", opset)
        object.__setattr__(self, "graph_name", graph.name or "onnx_graph")
        constants, parameter_paths, taken = {}, {}, set()
        for proto in graph.initializer:
            array = array_of_tensor_proto(proto, f"onnx.load: initializer {proto.name!r}")
            if array.dtype.kind in "fV":
                path = _attribute_path(proto.name, taken)
                self._install(path, Parameter(Tensor._wrap(array, _dtype_of_array(array), "cpu")))
                parameter_paths[proto.name] = ".".join(path)
            else:
                constants[proto.name] = array
        initialized = {p.name for p in graph.initializer}
        inputs = [v for v in graph.input if v.name not in initialized]
        object.__setattr__(self, "input_specs", [(v.name, *_value_type(v, "input")) for v in inputs])
        object.__setattr__(self, "output_names", [v.name for v in graph.output])
        for v in graph.output:
            _value_type(v, "output")
        object.__setattr__(self, "_constants", constants)
        object.__setattr__(self, "_parameter_paths", parameter_paths)
        object.__setattr__(self, "_steps", [(node.op_type, label, attrs, list(node.input), list(node.output))
                                            for node, (label, attrs) in zip(graph.node, checked)])

    def _install(self, path: tuple, parameter: Parameter) -> None:
        owner = self
        for part in path[:-1]:
            child = owner._modules.get(part)
            if child is None:
                child = Module()
                owner.add_module(part, child)
            owner = child
        owner.register_parameter(path[-1], parameter)

    # ---------------------------------------------------------------- running

    def forward(self, *inputs):
        return self._run(inputs, None)

    def shape_inputs(self, *inputs) -> list[str]:
        """The names of the inputs whose values fix shapes (a Reshape's target, Unsqueeze's axes, ...),
        found by running the model eagerly on `inputs`. Under tritonflow.jit pass those as Python
        values (ints or nested lists): they are then static, like any non-tensor argument."""
        read: list = []
        self._run(inputs, read)
        return [name for name, _, _ in self.input_specs if name in read]

    def _run(self, inputs: tuple, static_reads: list | None):
        values = self._bind_inputs(inputs)
        # static_reads given: which graph inputs each value came from, to report the shape inputs.
        origins = {id(values[name]): {name} for name, _, _ in self.input_specs} if static_reads is not None else None
        parameters = dict(self.named_parameters())
        ctx = trace_state.current()
        for onnx_name, dotted in self._parameter_paths.items():
            p = parameters[dotted]
            # While tracing, a parameter is a graph input (read at every call), never a folded constant.
            values[onnx_name] = Tensor._proxy(ctx.capture(p), ctx) if ctx is not None and p._node is None else p
        for name, array in self._constants.items():
            values[name] = Tensor._wrap(array, _dtype_of_array(array), "cpu")

        def as_static(value):
            if origins is not None:
                static_reads.extend(origins.get(id(value), ()))
            return None if value._node is not None else value.detach().numpy()

        for op_type, label, attrs, input_names, output_names in self._steps:
            self._run_node(values, op_type, label, attrs, input_names, output_names, ctx, as_static)
            if origins is not None:
                sources = set().union(*(origins.get(id(values[n]), set()) for n in input_names if n))
                origins.update((id(values[n]), sources) for n in output_names if n in values)
        missing = [n for n in self.output_names if n not in values]
        if missing:
            raise UnsupportedError(f"onnx.load: graph outputs {missing} are produced by no node")
        outputs = tuple(values[n] for n in self.output_names)
        return outputs[0] if len(outputs) == 1 else outputs

    def _bind_inputs(self, inputs: tuple) -> dict:
        from tritonflow.api.convert import is_tensor
        if len(inputs) != len(self.input_specs):
            names = ", ".join(name for name, _, _ in self.input_specs)
            raise ShapeError(f"onnx model {self.graph_name}: takes {len(self.input_specs)} inputs ({names}), "
                             f"got {len(inputs)}")
        values = {}
        for value, (name, dtype, shape) in zip(inputs, self.input_specs):
            if not is_tensor(value):
                value = _static_input(self.graph_name, name, value, dtype)
            if value.dtype is not dtype:
                raise DTypeError(f"onnx model {self.graph_name}: input {name!r} must be {dtype.name}, got {value.dtype.name}")
            if shape is not None and (len(shape) != value.ndim or any(
                    d is not None and d != a for d, a in zip(shape, value.shape))):
                declared = tuple("?" if d is None else d for d in shape)
                raise ShapeError(f"onnx model {self.graph_name}: input {name!r} must have shape {declared}, "
                                 f"got {tuple(value.shape)}")
            values[name] = value
        return values

    def _run_node(self, values: dict, op_type, label, attrs, input_names, output_names, ctx, as_static) -> None:
        missing = [n for n in input_names if n and n not in values]
        if missing:
            raise UnsupportedError(f"onnx.load: {label}: inputs {missing} are computed by no earlier node")
        args = [values[n] if n else None for n in input_names]
        foldable = ctx is not None and all(a is None or a._node is None for a in args)
        call = NodeCall(op_type, label, attrs, self.opset, args, len(output_names),
                        _as_tensor(None if foldable else ctx), as_static)
        handler = HANDLERS[op_type].run
        try:
            if foldable:   # every input is known while tracing: compute now, keep a constant
                with trace_state.tracing(None):
                    result = handler(call)
            else:
                result = handler(call)
        except TritonflowError as exc:
            if exc.raw_message.startswith("onnx.load"):
                raise
            raise type(exc)(f"onnx.load: {label}: {exc.raw_message}", loc=exc.loc) from None
        results = result if isinstance(result, (list, tuple)) else [result]
        for name, value in zip(output_names, results):
            if name:
                values[name] = value

    # ---------------------------------------------------------------- introspection

    def ir(self, *inputs):
        """The final tritonflow IR graph this model compiles to for `inputs` (by default, zeros of
        the declared input shapes)."""
        from tritonflow.jit_function import JitFunction
        if not inputs:
            inputs = tuple(_example_input(self.graph_name, *spec) for spec in self.input_specs)
        entry, _ = JitFunction(self).entry_for(inputs, {})
        return entry.graph

    def extra_repr(self) -> str:
        names = ", ".join(name for name, _, _ in self.input_specs)
        return f"graph={self.graph_name!r}, opset={self.opset}, inputs=({names}), nodes={len(self._steps)}"


def _dtype_of_array(array: np.ndarray):
    from tritonflow import dtypes as D
    return D.from_numpy_dtype(array.dtype)


def _as_tensor(ctx):
    if ctx is None:
        return lambda value: value

    def convert(value):
        if value._node is None:   # a folded or constant value used with traced ones: an IR constant
            from tritonflow.ir.types import TensorType
            return Tensor._proxy(ctx.constant(value.detach().numpy(), TensorType(value.shape, value.dtype)), ctx)
        return value
    return convert


def _static_input(graph_name: str, name: str, value, dtype):
    """An input given as a Python number or nested list: a constant of the declared dtype (static
    under tritonflow.jit, which keys on non-tensor arguments by value)."""
    if isinstance(value, (bool, int, float, list, tuple)):
        try:
            array = np.asarray(value, dtype=dtype.np)
        except (TypeError, ValueError):
            array = None
        if array is not None and array.dtype != object:
            return Tensor._wrap(array, dtype, "cpu")
    raise DTypeError(f"onnx model {graph_name}: input {name!r} must be a tensor (or, for an input that fixes "
                     f"a shape, a Python number or list), got {type(value).__name__}")


def _example_input(graph_name: str, name: str, dtype, shape):
    import tritonflow.api as T
    if shape is None or any(d is None for d in shape):
        raise ShapeError(f"onnx model {graph_name}: input {name!r} has symbolic dims {shape}; pass example inputs to ir()")
    return T.zeros(shape, dtype=dtype)
