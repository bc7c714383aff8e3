"""Helpers for comparing tritonflow's user-facing functions with torch on CPU (the independent reference).

`check(tf_fn, torch_fn, *arrays)` runs `tf_fn` on tritonflow tensors eagerly and under `jit`
(numpy backend), and `torch_fn` on torch tensors: the result dtype must equal torch's on the
original dtypes, and the values must match torch's float64 computation (floats upcast) within
DESIGN.md's tolerances for the result dtype.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np
import torch

import tritonflow as tf

from helpers import assert_close

TORCH_DTYPES = {
    np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16,
    np.dtype(ml_dtypes.bfloat16): torch.bfloat16, np.dtype(np.float64): torch.float64,
    np.dtype(np.int8): torch.int8, np.dtype(np.int32): torch.int32, np.dtype(np.int64): torch.int64,
    np.dtype(np.bool_): torch.bool,
}


def to_torch(a: np.ndarray) -> torch.Tensor:
    a = np.ascontiguousarray(a)
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(a.copy())


def from_torch(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def upcast(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "fV":
        return a.astype(np.float64)
    return a


def leaves(obj) -> list:
    if isinstance(obj, (tuple, list)):
        out = []
        for o in obj:
            out.extend(leaves(o))
        return out
    return [obj]


def _convert_args(args, convert):
    out = []
    for a in args:
        if isinstance(a, np.ndarray):
            out.append(convert(a))
        elif isinstance(a, list) and a and isinstance(a[0], np.ndarray):
            out.append([convert(x) for x in a])
        else:
            out.append(a)
    return out


def torch_reference(torch_fn, *args, **kwargs):
    """(expected dtypes, float64 values) of torch_fn: dtypes from the original inputs, values upcast."""
    typed = leaves(torch_fn(*_convert_args(args, to_torch), **kwargs))
    values = leaves(torch_fn(*_convert_args(args, lambda a: to_torch(upcast(a))), **kwargs))
    return [t.dtype for t in typed], [from_torch(v) for v in values]


def tf_dtype_name(torch_dtype) -> str:
    return str(torch_dtype).replace("torch.", "")


def check(tf_fn, torch_fn, *args, rtol_scale: float = 1, jit: bool = True, backend: str = "numpy",
          check_dtype: bool = True, **kwargs) -> None:
    """tf_fn on tritonflow tensors (eager and jitted) == torch_fn on torch tensors."""
    dtypes, wants = torch_reference(torch_fn, *args, **kwargs)
    tf_args = _convert_args(args, tf.from_numpy)
    runs = [("eager", lambda: tf_fn(*tf_args, **kwargs))]
    if jit:
        runs.append((f"jit[{backend}]", lambda: tf.jit(lambda *a: tf_fn(*a, **kwargs), backend=backend)(*tf_args)))
    for label, run in runs:
        got = leaves(run())
        assert len(got) == len(wants), f"{label}: {len(got)} results, torch gives {len(wants)}"
        for g, dtype, want in zip(got, dtypes, wants):
            name = tf_dtype_name(dtype)
            if check_dtype:
                assert g.dtype.name == name, f"{label}: dtype {g.dtype.name}, torch gives {name}"
            assert tuple(g.shape) == want.shape, f"{label}: shape {tuple(g.shape)}, torch gives {want.shape}"
            assert_close(g.numpy(), want, g.dtype.name, rtol_scale=rtol_scale, msg=label)


def rand(shape, dtype="float32", low=-3.0, high=3.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.startswith("int"):
        return np.asarray(rng.integers(int(low), int(high) + 1, size=shape)).astype(dtype)
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    return np.asarray(rng.uniform(low, high, size=shape)).astype(np_dtype)
