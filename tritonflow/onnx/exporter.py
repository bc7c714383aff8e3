"""ONNX export stage: `tritonflow.onnx.export` — trace a function or module, write its IR as ONNX.

The function is traced as `tritonflow.jit` traces it (no gradients, a module in eval mode), the
default passes run, and each IR node becomes ONNX nodes (export_elementwise, export_structure).
Tensor arguments are the ONNX graph's inputs; tensors the function reads from outside (a module's
parameters and buffers, captured globals) are initializers, named by their state-dict keys.
Dims listed in `dynamic_axes` (or the leading dims, with `dynamic=True`) are traced symbolically,
so the file takes any size there. The model is checked with onnx.checker (and its shape
inference) before the file is written; the file appears whole or not at all.
"""
from __future__ import annotations

import os
import tempfile

import sympy

from tritonflow.errors import DTypeError, ShapeError, UnsupportedError
from tritonflow.ir.graph import Graph
from tritonflow.onnx.builder import OnnxGraphBuilder, SymbolSource
from tritonflow.onnx.export_elementwise import EMITTERS as ELEMENTWISE_EMITTERS
from tritonflow.onnx.export_structure import EMITTERS as STRUCTURE_EMITTERS
from tritonflow.onnx.types import onnx_type_of

EMITTERS = {**ELEMENTWISE_EMITTERS, **STRUCTURE_EMITTERS}
DEFAULT_OPSET = 18
MIN_OPSET = 17
PRODUCER = "tritonflow"


def export(fn_or_module, args, path: str | os.PathLike | None, input_names: list[str] | None = None,
           output_names: list[str] | None = None, dynamic_axes: dict | None = None, *, dynamic: bool = False,
           opset_version: int = DEFAULT_OPSET, doc_string: str = ""):
    """Write `fn_or_module(*args)` as an ONNX model at `path` (None: do not write); returns the ModelProto.

    `args` is a tensor or a tuple of arguments (tensors become the graph's inputs, other values are
    static). `dynamic_axes` maps an input or output name to its symbolic axes, as a list of axis
    numbers or a dict {axis: name}; axes sharing a name share a size. `dynamic=True` makes every
    leading dim symbolic, as tritonflow.jit(dynamic=True) does.
    """
    import onnx
    from tritonflow import autograd
    from tritonflow.nn.modules import Module
    from tritonflow.passes.pipeline import run_passes
    from tritonflow.tracer import pytree
    from tritonflow.tracer.trace import trace

    if not MIN_OPSET <= opset_version <= onnx.defs.onnx_opset_version():
        raise UnsupportedError(f"onnx.export: opset_version {opset_version} is not supported "
                               f"(choose {MIN_OPSET}..{onnx.defs.onnx_opset_version()})")
    if not callable(fn_or_module):
        raise DTypeError(f"onnx.export: expected a function or an nn.Module, got {type(fn_or_module).__name__}")
    args = args if isinstance(args, tuple) else (args,)
    leaves: list = []
    pytree.flatten((args, {}), leaves)
    module = fn_or_module if isinstance(fn_or_module, Module) else None
    fn = module.forward if module is not None else fn_or_module  # its signature names the inputs
    keys, symbol_names = _tensor_keys(fn, args, leaves, input_names, dynamic_axes, dynamic)
    modes = [(m, m.training) for m in module.modules()] if module is not None else []
    name = type(module).__name__ if module is not None else getattr(fn_or_module, "__name__", "graph")
    try:
        if module is not None:
            module.eval()
        with autograd.no_grad():
            traced = trace(fn, args, {}, leaves, keys, name.replace("<", "").replace(">", ""))
    finally:
        for m, training in modes:
            m.training = training
    if traced.mutated:
        raise UnsupportedError("onnx.export: the function writes in place to a tensor argument; ONNX graphs "
                               "have no in-place updates (return the new value instead)")
    graph = run_passes(traced.graph)
    captured_names = _state_names(module, traced.captured)
    model = graph_to_model(graph, traced, captured_names, input_names, output_names, dynamic_axes or {},
                           symbol_names, opset_version, doc_string)
    if path is not None:
        _write_atomically(model, os.fspath(path))
    return model


# ---------------------------------------------------------------- tracing with symbolic dims

def _axes_of(spec, where: str) -> dict:
    """{axis: dim name or None} from a dynamic_axes entry (a list of axes or a dict axis -> name)."""
    if isinstance(spec, dict):
        return {int(a): str(n) for a, n in spec.items()}
    if isinstance(spec, (list, tuple)):
        return {int(a): None for a in spec}
    raise DTypeError(f"onnx.export: dynamic_axes[{where!r}] must be a list of axes or a dict axis -> name, "
                     f"got {type(spec).__name__}")


def _tensor_keys(fn, args: tuple, leaves: list, input_names, dynamic_axes, dynamic: bool) -> tuple:
    """(the tracer's tensor keys with the chosen dims symbolic, symbol -> ONNX dim name)."""
    from tritonflow.tracer import guards
    from tritonflow.tracer.trace import input_names as traced_input_names
    if input_names is not None and len(input_names) != len(leaves):
        raise ShapeError(f"onnx.export: {len(input_names)} input_names for {len(leaves)} tensor inputs")
    if dynamic and not dynamic_axes:
        keys = guards.tensor_keys(leaves, True)
        names = {}
        for key in keys:
            for d in key[0]:
                if isinstance(d, tuple):
                    names[d[1]] = f"s{d[1]}"
        return keys, names
    names_in = list(input_names) if input_names is not None else traced_input_names(fn, args, {}, len(leaves))
    symbol_of_name: dict[str, int] = {}
    symbol_of_size: dict[int, int] = {}
    names: dict[int, str] = {}
    keys = []
    for name, tensor in zip(names_in, leaves):
        axes = _axes_of((dynamic_axes or {}).get(name, []), name)
        shape_key = list(tensor.shape)
        for axis, dim_name in axes.items():
            if not -tensor.ndim <= axis < tensor.ndim:
                raise ShapeError(f"onnx.export: dynamic axis {axis} of input {name!r} with shape {tuple(tensor.shape)}")
            axis %= tensor.ndim
            if dim_name is not None:
                symbol = symbol_of_name.setdefault(dim_name, len(names))
            else:   # unnamed axes of one size share a symbol (jit's duck sizing)
                symbol = symbol_of_size.setdefault(tensor.shape[axis], len(names))
            names.setdefault(symbol, dim_name or f"{name}_dim{axis}")
            shape_key[axis] = ("sym", symbol)
        keys.append((tuple(shape_key), tensor.dtype.name, tensor.device, False))
    return tuple(keys), names


def _state_names(module, captured: list) -> list[str]:
    """An initializer name per captured tensor: its state-dict key, else c0, c1, ..."""
    by_id = {}
    if module is not None:
        for key, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            by_id.setdefault(id(tensor), key)
    return [by_id.get(id(t), f"c{i}") for i, t in enumerate(captured)]


# ---------------------------------------------------------------- IR -> ONNX

def _dim_proto(dim, names: dict) -> dict:
    if isinstance(dim, int):
        return {"dim_value": dim}
    text = str(dim.xreplace({s: sympy.Symbol(names.get(int(s.name[1:]), s.name)) for s in dim.free_symbols}))
    return {"dim_param": text.replace(" ", "")}


def _value_info(name: str, node, names: dict, overrides: dict | None = None):
    from onnx import TensorProto, helper
    proto = helper.make_empty_tensor_value_info(name)
    proto.type.tensor_type.elem_type = onnx_type_of(node.type.dtype)
    shape = proto.type.tensor_type.shape
    shape.SetInParent()
    for axis, d in enumerate(node.type.shape):
        entry = shape.dim.add()
        label = (overrides or {}).get(axis)
        if label is not None and not isinstance(d, int):
            entry.dim_param = label
        else:
            for field, value in _dim_proto(d, names).items():
                setattr(entry, field, value)
    assert proto.type.tensor_type.elem_type != TensorProto.UNDEFINED
    return proto


def graph_to_model(graph: Graph, traced, captured_names: list, input_names, output_names, dynamic_axes: dict,
                   symbol_names: dict, opset: int, doc_string: str = ""):
    """The ONNX ModelProto of a final IR graph (see the module docstring)."""
    import onnx
    from onnx import helper
    n_out = traced.n_outputs
    out_names = list(output_names) if output_names is not None else [f"output_{i}" for i in range(n_out)]
    if len(out_names) != n_out:
        raise ShapeError(f"onnx.export: {len(out_names)} output_names for {n_out} outputs")
    in_names = list(input_names) if input_names is not None else [n.name for n in graph.inputs[:traced.n_args]]
    unknown = set(dynamic_axes) - set(in_names) - set(out_names)
    if unknown:
        raise ShapeError(f"onnx.export: dynamic_axes names {sorted(unknown)}, which are neither inputs nor outputs "
                         f"(inputs {in_names}, outputs {out_names})")
    b = OnnxGraphBuilder(opset)
    names: dict[int, str] = {}
    inputs = []
    for node, name in zip(graph.inputs[:traced.n_args], in_names):
        names[id(node)] = b.reserve(name)
        inputs.append(_value_info(names[id(node)], node, symbol_names))
        for axis, d in enumerate(node.type.shape):
            if isinstance(d, sympy.Symbol):
                b.symbols.setdefault(d, SymbolSource(names[id(node)], axis))
    for node, tensor, name in zip(graph.inputs[traced.n_args:], traced.captured, captured_names):
        names[id(node)] = b.initializer(tensor.detach().numpy(), name)
    for node in graph.inputs[traced.n_args + len(traced.captured):]:
        names[id(node)] = node.name   # the random seed and offset: every reader raises (no ONNX form)
    for index, node in enumerate(graph.nodes):
        b.loc, b.label = node.loc, f"{node.op}_{index}"
        if node.op == "constant":
            names[id(node)] = b.constant(node.attrs["value"])
            continue
        emitter = EMITTERS.get(node.op)
        if emitter is None:
            raise b.unsupported(f"the op {node.op} has no ONNX form")
        names[id(node)] = emitter(b, node, [names[id(i)] for i in node.inputs])
    b.loc = None
    _name_outputs(b, graph.outputs[:n_out], names, out_names)
    value_infos = [_value_info(name, node, symbol_names, _axes_of(dynamic_axes.get(name, []), name))
                   for node, name in zip(graph.outputs[:n_out], out_names)]
    onnx_graph = helper.make_graph(b.nodes, graph.name, inputs, value_infos, b.initializers)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name=PRODUCER, producer_version=_version(), doc_string=doc_string)
    model.ir_version = min(model.ir_version, onnx.IR_VERSION)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:  # our bug, not the user's: say what failed
        raise UnsupportedError(f"onnx.export: the exported model failed onnx.checker: {exc}") from None
    return model


def _name_outputs(b, out_nodes: list, names: dict, out_names: list) -> None:
    """Give each output value its requested name: rename the producing node's output, or add an
    Identity when the value is an input, an initializer or already another output."""
    produced = {output: node for node in b.nodes for output in node.output}
    renamed: set = set()
    for node, wanted in zip(out_nodes, out_names):
        value = names[id(node)]
        producer = produced.get(value)
        if producer is not None and value not in renamed and not b.is_taken(wanted):
            for other in b.nodes:
                other.input[:] = [wanted if i == value else i for i in other.input]
            producer.output[:] = [wanted if o == value else o for o in producer.output]
            renamed.add(value)
            names[id(node)] = wanted
            b.reserve(wanted)
        else:
            from onnx import helper
            b.nodes.append(helper.make_node("Identity", [value], [b.reserve(wanted)], name=b.reserve(f"output/{wanted}")))


def _version() -> str:
    import tritonflow
    return tritonflow.__version__


def _write_atomically(model, path: str) -> None:
    import onnx
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".tritonflow-onnx-", dir=folder)
    os.close(handle)
    try:
        onnx.save(model, temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
