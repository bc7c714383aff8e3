"""Framework API: turning Python values into tensors, promotion of operands, device moves."""
from __future__ import annotations

import numpy as np

from tritonflow import dtypes as D
from tritonflow.autograd import FunctionNode, is_grad_enabled
from tritonflow.dispatch import apply
from tritonflow.errors import DeviceError, DTypeError
from tritonflow.ir.types import TensorType
from tritonflow.ops.elementwise import CAST
from tritonflow.tensor_class import Tensor
from tritonflow.tracer import state as trace_state


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)


def scalar_tensor(value, dtype: D.DType, device: str = "cpu"):
    """A 0-d tensor holding a Python number: a literal constant node when tracing."""
    array = np.asarray(value).astype(dtype.np) if dtype is not D.bfloat16 else \
        np.asarray(float(value), dtype=np.float32).astype(dtype.np)
    ctx = trace_state.current()
    if ctx is not None:
        return Tensor._proxy(ctx.constant(array, TensorType((), dtype)), ctx)
    return Tensor._wrap(array, dtype, "cpu")


def _is_number(x) -> bool:
    return isinstance(x, (bool, int, float, np.bool_, np.integer, np.floating))


def as_operand(x, op: str):
    """Check an operand is a tensor or a Python number (numbers stay numbers: they are weak)."""
    if is_tensor(x) or _is_number(x):
        return x
    if isinstance(x, np.ndarray):
        return tensor(x)
    raise DTypeError(f"{op}: expected a tensor or a number, got {type(x).__name__}")


def promote_operands(op: str, *args):
    """Cast tensor operands to their promoted dtype; turn weak scalars into 0-d tensors of it."""
    args = [as_operand(a, op) for a in args]
    tensors = [a for a in args if is_tensor(a)]
    if not tensors:
        dtype = D.dtype_of_scalar(args[0])
        for a in args[1:]:
            dtype = D.promote_types(dtype, D.dtype_of_scalar(a))
    else:
        dtype = tensors[0].dtype
        for t in tensors[1:]:
            dtype = D.promote_types(dtype, t.dtype)
        for a in args:
            if not is_tensor(a):
                dtype = D.promote_with_scalar(dtype, a)
    device = next((t.device for t in tensors if t.device != "cpu"), "cpu")
    out = []
    for a in args:
        if is_tensor(a):
            out.append(a if a.dtype is dtype else cast(a, dtype))
        else:
            out.append(scalar_tensor(a, dtype, device))
    return out, dtype


def tensor(data, dtype=None, device: str = "cpu", requires_grad: bool = False):
    """A new tensor from a Python number, nested lists, a NumPy array or another tensor (copied)."""
    if is_tensor(data):
        out = data.detach()
        if dtype is not None:
            out = cast(out, D.as_dtype(dtype))
        out = to(out, device) if device != out.device else out
    else:
        if dtype is not None:
            dtype = D.as_dtype(dtype)
        if hasattr(data, "__dlpack__") and not isinstance(data, np.ndarray) and type(data).__module__.startswith("torch"):
            from tritonflow.storage import torch_to_numpy
            array = torch_to_numpy(data)
        else:
            try:
                array = np.asarray(data) if dtype is None or dtype is not D.bfloat16 else \
                    np.asarray(data, dtype=np.float32)
            except (ValueError, TypeError) as exc:  # ragged nested lists, non-numbers
                raise DTypeError(f"tensor: cannot build a tensor from {type(data).__name__}: {exc}") from None
        if array.dtype == object:
            raise DTypeError(f"tensor: cannot build a tensor from {type(data).__name__} "
                             f"(ragged nested lists or non-numbers)")
        if dtype is None:
            if array.dtype.kind == "f" and array.dtype.itemsize == 8 and not isinstance(data, (np.ndarray, np.generic)):
                dtype = D.DEFAULT_FLOAT  # Python floats default to float32; NumPy's float64 stays, like PyTorch
            else:
                try:
                    dtype = D.from_numpy_dtype(array.dtype)
                except DTypeError as exc:
                    raise DTypeError(f"tensor: {exc.raw_message}") from None
        array = np.array(array, dtype=dtype.np, copy=True)
        out = Tensor._wrap(array, dtype, "cpu")
        if device != "cpu":
            out = to(out, device)
    if requires_grad:
        out.requires_grad_(True)
    return out


def from_numpy(array: np.ndarray):
    """Wrap a NumPy array (shares memory; tritonflow never writes into it)."""
    if not isinstance(array, np.ndarray):
        raise DTypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    try:
        dtype = D.from_numpy_dtype(array.dtype)
    except DTypeError as exc:
        raise DTypeError(f"from_numpy: {exc.raw_message}") from None
    if array.dtype != dtype.np:
        array = array.astype(dtype.np)
    return Tensor._wrap(array, dtype, "cpu")


_DL_CPU, _DL_CUDA = 1, 2  # DLPack device types


def from_dlpack(obj):
    """A tensor sharing memory with a DLPack producer (NumPy, torch, CuPy, JAX) or a DLPack capsule.

    Zero-copy: tritonflow never writes into it, but the producer may (the tensor sees that)."""
    if type(obj).__name__ == "PyCapsule":  # torch.utils.dlpack.to_dlpack's legacy form
        import torch.utils.dlpack
        obj = torch.utils.dlpack.from_dlpack(obj)
    if not hasattr(obj, "__dlpack__"):
        raise DTypeError(f"from_dlpack: expected an object with __dlpack__ (or a DLPack capsule), got "
                         f"{type(obj).__name__}")
    device_type = obj.__dlpack_device__()[0] if hasattr(obj, "__dlpack_device__") else _DL_CPU
    if device_type == _DL_CPU:
        try:
            return from_numpy(np.from_dlpack(obj))
        except (TypeError, BufferError, RuntimeError):  # a dtype NumPy cannot import (bfloat16)
            import torch
            from tritonflow.storage import torch_to_numpy
            return from_numpy(torch_to_numpy(torch.from_dlpack(obj)))
    if device_type != _DL_CUDA:
        raise DeviceError(f"from_dlpack: DLPack device type {device_type} is neither CPU (1) nor CUDA (2)")
    import torch
    from tritonflow.storage import torch_dtype_to_tritonflow
    t = torch.from_dlpack(obj)
    return Tensor._wrap(t, torch_dtype_to_tritonflow(t.dtype), "cuda")


def cast(x, dtype):
    dtype = D.as_dtype(dtype)
    if x.dtype is dtype:
        return x
    return apply(CAST, [x], {"dtype": dtype})


def _normalize_device(device) -> str:
    name = str(device)
    if name.startswith("cuda"):
        return "cuda"
    if name == "cpu":
        return "cpu"
    raise DeviceError(f"to: unknown device {device!r} (expected 'cpu' or 'cuda')")


def to(x, *args, dtype=None, device=None, copy: bool = False):
    """`x.to("cuda")`, `x.to(tritonflow.float16)`, `x.to("cuda", tritonflow.bfloat16)`."""
    for a in args:
        if isinstance(a, str) or type(a).__name__ == "device":
            device = a
        elif is_tensor(a):
            device, dtype = a.device, a.dtype
        else:
            dtype = a
    out = x
    if dtype is not None:
        out = cast(out, D.as_dtype(dtype))
    if device is not None:
        device = _normalize_device(device)
        if device != out.device:
            if out._node is not None:
                raise DeviceError("to: moving a traced tensor between devices inside jit is not supported")
            from tritonflow.storage import cuda_available, numpy_to_torch, torch_to_numpy
            if device == "cuda":
                if not cuda_available():
                    raise DeviceError("to('cuda'): no CUDA device is available on this machine")
                moved = Tensor._wrap(numpy_to_torch(out._data, "cuda"), out.dtype, "cuda")
            else:
                moved = Tensor._wrap(torch_to_numpy(out._data), out.dtype, "cpu")
            if out.requires_grad:
                if is_grad_enabled():
                    moved = _device_move_with_grad(out, moved)
            out = moved
    return out


def _device_move_with_grad(src, moved):
    def backward(g):
        return (to(g, src.device),)
    moved.requires_grad = True
    moved._grad_fn = FunctionNode("to", backward, [src], [moved._alias()])
    return moved
