"""Framework stage: moving arrays between NumPy (CPU storage) and torch (CUDA storage, launch host).

torch is imported lazily, only when a CUDA tensor or the triton backend is used. bfloat16 has no
NumPy-native type, so it crosses as raw 16-bit words and is reinterpreted on the other side.
"""
from __future__ import annotations

import numpy as np

from tritonflow import dtypes as D


def torch_dtype(dtype: D.DType):
    import torch
    return {
        "bool": torch.bool, "int8": torch.int8, "int32": torch.int32, "int64": torch.int64,
        "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
        "float64": torch.float64,
    }[dtype.name]


def numpy_to_torch(array: np.ndarray, device: str = "cpu"):
    """A torch tensor holding `array` (shared memory on CPU when the layout allows)."""
    import torch
    if array.dtype == D.bfloat16.np:
        words = np.ascontiguousarray(array).view(np.int16)
        tensor = torch.from_numpy(words).view(torch.bfloat16)
    else:
        if array.strides and any(s < 0 for s in array.strides) or not array.flags.writeable:
            array = np.array(array)
        tensor = torch.from_numpy(array) if array.ndim else torch.from_numpy(array.reshape(1)).reshape(())
    return tensor.to(device) if device != "cpu" else tensor


def torch_to_numpy(tensor) -> np.ndarray:
    import torch
    tensor = tensor.detach()
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    if tensor.dtype == torch.bfloat16:
        return tensor.contiguous().view(torch.int16).numpy().view(D.bfloat16.np)
    return tensor.numpy()


def torch_dtype_to_tritonflow(tdtype) -> D.DType:
    return D.as_dtype(str(tdtype).replace("torch.", ""))


def torch_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
