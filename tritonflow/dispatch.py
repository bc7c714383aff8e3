"""Framework stage: apply one primitive to tensors — record it when tracing, else run it now.

Eager CPU tensors run the op table's NumPy meaning (the interpreter's run_numpy); eager CUDA
tensors run the same op through the triton backend's `run_op` (a one-node graph through the
lowering), so eager and compiled share code. Autograd records a GradNode whenever an input
requires grad. The front end installs `apply` into the core (ops/lazy_api.py) for the vjp rules.
"""
from __future__ import annotations

from tritonflow import autograd, backends
from tritonflow.errors import DeviceError, TraceError, TritonflowError, UnsupportedError, user_location
from tritonflow.interpreter import run_numpy
from tritonflow.ir.types import TensorType
from tritonflow.ops.registry import OpDef
from tritonflow.tensor_class import Tensor
from tritonflow.tracer import state as trace_state


def apply(op: OpDef, inputs: list, attrs: dict):
    """Run or record `op(*inputs, **attrs)` and return the output Tensor."""
    ctx = trace_state.current()
    if ctx is not None:
        nodes = [ctx.node_of(t) for t in inputs]
        try:
            out_type = op.infer([n.type for n in nodes], attrs)
        except TypeError as exc:
            # A shape rule comparing a symbolic dim (dynamic=True) that SymPy cannot decide.
            if isinstance(exc, TritonflowError) or "Relational" not in str(exc):
                raise
            shapes = ", ".join(str(tuple(n.type.shape)) for n in nodes)
            raise UnsupportedError(f"{op.name}: a shape check on symbolic dims cannot be decided while tracing "
                                   f"({exc}); input shapes {shapes}. Keep this dim static: jit without "
                                   f"dynamic=True") from None
        node = ctx.graph.add(op.name, nodes, attrs, out_type, user_location())
        out = Tensor._proxy(node, ctx)
    else:
        for t in inputs:
            if t._node is not None:  # a proxy kept past its trace (appended to a list, a global)
                raise TraceError(f"{op.name}: a traced tensor escaped its jitted function and was used "
                                 f"outside it; return it from the function instead")
        out_type = op.infer([TensorType(t.shape, t.dtype) for t in inputs], attrs)
        device = _common_device(op, inputs, attrs)
        if device == "cpu":
            data = run_numpy(op, [t._data for t in inputs], attrs, out_type)
        else:
            data = _run_cuda(op, inputs, attrs, out_type)
        out = Tensor._wrap(data, out_type.dtype, device)

    if op.differentiable and op.vjp is not None and autograd.is_grad_enabled():
        if any(t.requires_grad for t in inputs):
            out.requires_grad = True
            out._grad_fn = autograd.GradNode(op, attrs, inputs, out)
    return out


def _common_device(op: OpDef, inputs: list, attrs: dict) -> str:
    if not inputs:
        return attrs.get("device", "cpu") if "device" in attrs else "cpu"
    device = inputs[0].device
    for t in inputs[1:]:
        if t.device != device:
            # 0-d CPU tensors mix with any device, as in PyTorch.
            if t.device == "cpu" and t.ndim == 0:
                continue
            if device == "cpu" and inputs[0].ndim == 0:
                device = t.device
                continue
            raise DeviceError(f"{op.name}: expected all tensors on one device, got {device} and {t.device}")
    return device


def _run_cuda(op: OpDef, inputs: list, attrs: dict, out_type: TensorType):
    try:
        backend = backends.get("triton", "cuda")
    except UnsupportedError as exc:  # pragma: no cover - depends on the machine
        raise DeviceError(f"{op.name}: CUDA tensors run on the triton backend: {exc}") from exc
    datas = [t._data if t.device != "cpu" else t.to("cuda")._data for t in inputs]
    return backend.run_op(op, datas, attrs, out_type)
