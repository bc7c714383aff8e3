"""Framework stage: apply one primitive to tensors — record it when tracing, else run it now.

Eager CPU tensors run the op table's NumPy meaning; eager CUDA tensors run the same op as a
one-node graph through the Triton lowering (tritonflow.kernels.runtime.eager), so eager and compiled share code.
Autograd records a GradNode whenever an input requires grad.
"""
from __future__ import annotations

import numpy as np

from tritonflow import autograd
from tritonflow import trace_state
from tritonflow.errors import DeviceError, TraceError, TritonflowError, UnsupportedError, user_location
from tritonflow.ir.types import TensorType
from tritonflow.ops.registry import OpDef


def apply(op: OpDef, inputs: list, attrs: dict):
    """Run or record `op(*inputs, **attrs)` and return the output Tensor."""
    from tritonflow.tensor_class import Tensor

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


def run_numpy(op: OpDef, arrays: list, attrs: dict, out_type: TensorType) -> np.ndarray:
    """The op's meaning on NumPy arrays, with the result in exactly the inferred dtype and shape."""
    # IEEE special values (NaN compares, 0/0, overflow) are results, not errors: no NumPy warnings.
    with np.errstate(all="ignore"):
        return run_numpy_quiet(op, arrays, attrs, out_type)


def run_numpy_quiet(op: OpDef, arrays: list, attrs: dict, out_type: TensorType) -> np.ndarray:
    """`run_numpy` for a caller that already holds `np.errstate(all="ignore")` (a whole graph run:
    entering errstate costs about as much as a small op)."""
    try:
        result = op.numpy(*arrays, **attrs)
    except TritonflowError:
        raise
    except Exception as exc:  # a NumPy failure the type rule did not foresee is our bug
        raise UnsupportedError(f"{op.name}: the reference implementation failed on inputs "
                               f"{[tuple(a.shape) for a in arrays]}: {exc}") from exc
    result = np.asarray(result)
    if result.dtype != out_type.dtype.np:
        result = result.astype(out_type.dtype.np)
    return result


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
        from tritonflow.kernels.runtime import eager
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise DeviceError(f"{op.name}: CUDA tensors need triton and torch installed ({exc})") from exc
    datas = [t._data if t.device != "cpu" else t.to("cuda")._data for t in inputs]
    return eager.run_op(op, datas, attrs, out_type)
