"""Independent reference implementations for the op table's generated tests.

Written here, in the test suite, from what each op means (PyTorch's and NumPy's documented
behaviour), not from tritonflow's own `OpDef.numpy`: floats are upcast to float64, integers to
int64, bools stay bool, and the reference is computed with torch on CPU or plain NumPy.
"""
from __future__ import annotations

import math
import struct

import ml_dtypes
import numpy as np
import torch

F64 = np.float64


def upcast(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.bool_:
        return a.copy()
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    return a.astype(F64)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a))


def _n(t: torch.Tensor) -> np.ndarray:
    return t.numpy()


def _torch_unary(fn):
    return lambda x: _n(fn(_t(x)))


def _torch_binary(fn):
    return lambda a, b: _n(fn(_t(a), _t(b)))


def _int_pow(a, b):
    # PyTorch's integer power: a negative exponent truncates 1 / a**|b| toward zero.
    a, b = np.broadcast_arrays(a, b)
    out = np.empty(a.shape, np.int64)
    for i in np.ndindex(a.shape):
        base, exp = int(a[i]), int(b[i])
        if exp >= 0:
            out[i] = base ** exp
        elif base == 1:
            out[i] = 1
        elif base == -1:
            out[i] = 1 if exp % 2 == 0 else -1
        else:
            out[i] = 0
    return out


def _pow(a, b):
    if a.dtype.kind in "iu":
        return _int_pow(a, b)
    return np.power(a, b)


def _round_half_even(x):
    if x.dtype.kind in "iu":
        return x
    return _n(torch.round(_t(x)))


UNARY = {
    "neg": lambda x: -x,
    "abs": np.abs,
    "exp": _torch_unary(torch.exp),
    "exp2": _torch_unary(torch.exp2),
    "log": _torch_unary(torch.log),
    "log2": _torch_unary(torch.log2),
    "log1p": _torch_unary(torch.log1p),
    "expm1": _torch_unary(torch.expm1),
    "sqrt": _torch_unary(torch.sqrt),
    "rsqrt": _torch_unary(torch.rsqrt),
    "sin": _torch_unary(torch.sin),
    "cos": _torch_unary(torch.cos),
    "tanh": _torch_unary(torch.tanh),
    "sigmoid": _torch_unary(torch.sigmoid),
    "erf": _torch_unary(torch.erf),
    "relu": _torch_unary(torch.relu),
    "floor": lambda x: x if x.dtype.kind in "iu" else np.floor(x),
    "ceil": lambda x: x if x.dtype.kind in "iu" else np.ceil(x),
    "round": _round_half_even,
    "sign": _torch_unary(torch.sign),
    "reciprocal": _torch_unary(torch.reciprocal),
    "logical_not": _torch_unary(torch.logical_not),
    "isnan": _torch_unary(torch.isnan),
    "isinf": _torch_unary(torch.isinf),
    "isfinite": _torch_unary(torch.isfinite),
}

BINARY = {
    "add": lambda a, b: np.logical_or(a, b) if a.dtype == np.bool_ else a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: np.logical_and(a, b) if a.dtype == np.bool_ else a * b,
    "div": lambda a, b: a / b,
    "floor_divide": _torch_binary(torch.floor_divide),
    "remainder": _torch_binary(torch.remainder),
    "pow": _pow,
    "maximum": _torch_binary(torch.maximum),
    "minimum": _torch_binary(torch.minimum),
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "logical_and": _torch_binary(torch.logical_and),
    "logical_or": _torch_binary(torch.logical_or),
    "logical_xor": _torch_binary(torch.logical_xor),
}


def _reduce(torch_fn, name):
    def run(x, dims, keepdim):
        if not dims:
            return x.copy()
        t = _t(x)
        if name in ("sum", "prod") and t.dtype == torch.bool:
            t = t.long()
        if name in ("amax", "amin"):
            out = torch_fn(t, dim=tuple(dims), keepdim=keepdim)
        elif name == "prod":
            out = t
            for d in sorted(dims, reverse=True):
                out = torch.prod(out, dim=d, keepdim=keepdim)
        else:
            out = torch_fn(t, dim=tuple(dims), keepdim=keepdim)
        return _n(out)
    return run


def _arg(np_fn):
    def run(x, dims, keepdim):
        if x.ndim == 0:
            return np.zeros((), np.int64)
        (axis,) = dims
        return np_fn(x, axis=axis, keepdims=keepdim)
    return run


def _slice(x, start, step, shape):
    # Element i along dim d reads input position start[d] + i * step[d].
    grids = np.meshgrid(*[np.asarray([s + i * st for i in range(n)], dtype=np.int64)
                          for s, st, n in zip(start, step, shape)], indexing="ij")
    return x[tuple(grids)] if x.ndim else x.copy()


def _pad(x, pads, value):
    out = np.full(tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, pads)), value, dtype=x.dtype)
    out[tuple(slice(lo, lo + d) for d, (lo, _) in zip(x.shape, pads))] = x
    return out


def _gather(x, index, dim):
    index = np.where(index < 0, index + x.shape[dim], index)
    return _n(torch.gather(_t(x), dim, _t(index)))


def _scatter_add(base, index, src, dim):
    # out[..., index[i], ...] += src[i] along `dim`, one element at a time (bool: logical or).
    out = base.copy()
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[dim] = int(index[pos]) % base.shape[dim]
        if out.dtype == np.bool_:
            out[tuple(target)] = out[tuple(target)] or src[pos]
        else:
            out[tuple(target)] += src[pos]
    return out


def _scatter(base, index, src, dim):
    index = np.where(index < 0, index + base.shape[dim], index)
    return _n(torch.scatter(_t(base), dim, _t(index), _t(src)))


def _argsort(x, dim, descending):
    if x.ndim == 0:
        return np.zeros((), np.int64)
    return _n(torch.sort(_t(x), dim=dim, descending=descending, stable=True).indices)


def _matmul(a, b):
    if a.dtype.kind in "iu":
        return np.matmul(a, b)
    return _n(torch.matmul(_t(a), _t(b)))


def _cumsum(x, dim):
    if x.ndim == 0:
        return x.astype(np.int64) if x.dtype.kind in "biu" else x.copy()
    return _n(torch.cumsum(_t(x), dim))


def _iota(shape, dim, dtype):
    out = np.zeros(shape, np.int64)
    for idx in np.ndindex(*shape):
        out[idx] = idx[dim]
    return out


# ---------------------------------------------------------------- Philox 4x32-10, from the paper

def philox_4x32_10(seed: int, counter: int) -> tuple:
    """One block of Philox4x32-10 (Salmon et al., SC'11) on Python ints: key = (seed lo, seed hi),
    counter words = (counter lo, counter hi, 0, 0) for a 64-bit counter."""
    m0, m1 = 0xD2511F53, 0xCD9E8D57
    w0, w1 = 0x9E3779B9, 0xBB67AE85
    mask = 0xFFFFFFFF
    k0, k1 = seed & mask, (seed >> 32) & mask
    c = [counter & mask, (counter >> 32) & mask, 0, 0]
    for _ in range(10):
        p0, p1 = m0 * c[0], m1 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k0) & mask, p1 & mask, ((p0 >> 32) ^ c[3] ^ k1) & mask, p0 & mask]
        k0, k1 = (k0 + w0) & mask, (k1 + w1) & mask
    return tuple(c)


def uniform_from_bits(word: int) -> float:
    # Triton's uint_to_uniform_float for 32-bit words: as int32, negatives folded, times 2**-31.
    as_int = struct.unpack("<i", struct.pack("<I", word))[0]
    if as_int < 0:
        as_int = -as_int - 1
    return float(np.float32(np.float32(as_int) * np.float32(4.6566127342e-10)))


def _philox_uniform(seed, offset, shape, lane):
    n = math.prod(shape)
    values = [uniform_from_bits(philox_4x32_10(int(seed), int(offset) + i)[lane]) for i in range(n)]
    return np.asarray(values, dtype=np.float32).reshape(shape)


OTHER = {
    "cast": lambda x, dtype: x.astype(dtype.np) if not (dtype.is_integer and x.dtype.kind == "f")
    else np.trunc(x).astype(dtype.np),
    "where": lambda c, a, b: _n(torch.where(_t(c), _t(a), _t(b))),
    "reduce_sum": _reduce(torch.sum, "sum"),
    "reduce_prod": _reduce(None, "prod"),
    "reduce_max": _reduce(torch.amax, "amax"),
    "reduce_min": _reduce(torch.amin, "amin"),
    "argmax": _arg(np.argmax),
    "argmin": _arg(np.argmin),
    "cumsum": _cumsum,
    "reshape": lambda x, shape: x.reshape(shape),
    "permute": lambda x, perm: np.transpose(x, perm),
    "expand": lambda x, shape: np.broadcast_to(x, shape),
    "slice": _slice,
    "pad": _pad,
    "cat": lambda *xs, dim: np.concatenate(xs, axis=dim),
    "gather": _gather,
    "scatter_add": _scatter_add,
    "scatter": _scatter,
    "argsort": _argsort,
    "matmul": _matmul,
    "full": lambda shape, value, dtype: np.full(shape, value, dtype=F64 if dtype.is_floating_point else dtype.np),
    "iota": _iota,
    "philox_uniform": _philox_uniform,
}

from tests.templates.attention_reference import REFERENCES as _ATTENTION_REFERENCES  # noqa: E402
OTHER.update(_ATTENTION_REFERENCES)  # the fused attention primitives (tritonflow/ops/attention.py)


def reference(name: str, arrays: list, attrs: dict) -> np.ndarray:
    """The meaning of op `name` on upcast copies of `arrays`."""
    arrays = [upcast(a) for a in arrays]
    with np.errstate(all="ignore"):
        if name in UNARY:
            return np.asarray(UNARY[name](*arrays))
        if name in BINARY:
            return np.asarray(BINARY[name](*arrays))
        return np.asarray(OTHER[name](*arrays, **attrs))


__all__ = ["reference", "upcast", "philox_4x32_10", "uniform_from_bits", "ml_dtypes"]
