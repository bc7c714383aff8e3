"""Op table: fused attention — `attention` and the primitives of its fused backward.

Framework stage. `attention(q, k, v[, mask][, seed, offset])` is
softmax(q @ k^T * scale + mask) @ v over the last two dims, with dropout on the probabilities,
lowered to one flash-style kernel (kernels/templates/attention.py) that never writes the
L x S scores to memory. Attributes:

- scale (float), is_causal (bool: key j is visible from query i when j <= i, PyTorch's top-left
  alignment), mask ("none" | "bool" | "additive": whether a mask input follows v; a bool mask is
  True where attention is allowed, as in F.scaled_dot_product_attention),
- dropout_p (float): when > 0, two 0-d int64 inputs (seed, offset) follow; score element
  (batch..., i, j) is kept when Philox uniform number `offset + flat index` (lane 0) is >= p,
  exactly the numbers F.dropout would draw for the written-out probabilities.

A fully masked row gives zeros (F.softmax's rule), never NaN.

The backward is fused the same way (scores recomputed blockwise, never stored):
  stats = attention_delta(q, k, v, g[, mask][, seed, offset])  -> [..., L, 3]
  dq    = attention_dq(q, k, v, g, stats[, mask][, seed, offset])
  dkv   = attention_dkv(q, k, v, g, stats[, mask][, seed, offset])  -> [..., S, E + Ev]
Per query row, attention_delta recomputes the scores s and finds their max m and
z = sum_j exp(s - m) (online, as the forward does), and with dp = g @ v^T (dropped out as the
forward dropped p) stores delta = sum_j exp(s - m) * dp / z, m and 1 / z. Then
p = exp(s - m) / z and dS = p * (dp - delta). attention_lse (the row log-sum-exp, which the
forward kernel can write alongside its output) is not part of the backward.

Why the backward makes its own row statistics rather than taking the forward's lse and
rowsum(g * out) as FlashAttention-2 does: the gradients need sum_j dS_ij = 0, and with large
scores (|s| ~ 1e3 in float32) rowsum(g * out) differs from sum_j p * dp by its rounding, which
dq = dS @ k * scale multiplies by |k|: self-attention sdpa(v, v, v) had 14x the gradient error of
torch's float32 (issue 12). A float32 lse near 1e3 is itself off by up to 3e-5, which would scale
a whole row of p; relative to the recomputed max, p is computed as torch's softmax computes it,
and a one-hot row comes out exactly (exp(0) = 1, z = 1). The price is one more pass over the
scores (two products per tile) in the backward, in place of the forward's lse.

Every primitive has a NumPy reference (the interpreter runs the same IR). An additive mask that
requires grad gets dS summed to its shape (written out: that gradient is L x S by nature).
"""
from __future__ import annotations

import numpy as np

from tritonflow import dtypes as D
from tritonflow import philox
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.ir.types import TensorType
from tritonflow.ops.head_blocks import KEY_ROWS, QUERY_ROWS, QUERY_VECTOR, blockwise
from tritonflow.ops.lazy_api import T
from tritonflow.ops.registry import Kind, OpDef, register
from tritonflow.ops.shapes import broadcast_shapes, dims_equal, fmt

MAX_HEAD_DIM = 256
MASK_KINDS = ("none", "bool", "additive")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


# ---------------------------------------------------------------- inputs and types

def split_inputs(items: list, attrs: dict, leading: int) -> tuple:
    """(the first `leading` inputs, mask or None, (seed, offset) or None)."""
    head = list(items[:leading])
    rest = list(items[leading:])
    mask = rest.pop(0) if attrs.get("mask", "none") != "none" else None
    rng = (rest[0], rest[1]) if attrs.get("dropout_p", 0.0) > 0 else None
    return head, mask, rng


def _check_attrs(op: str, attrs: dict) -> None:
    if attrs.get("mask", "none") not in MASK_KINDS:
        raise ShapeError(f"{op}: mask kind must be one of {MASK_KINDS}, got {attrs.get('mask')!r}")
    p = attrs.get("dropout_p", 0.0)
    if not 0.0 <= p < 1.0:
        raise ShapeError(f"{op}: dropout_p must be in [0, 1), got {p}")
    if attrs.get("is_causal") and attrs.get("mask", "none") != "none":
        raise ShapeError(f"{op}: pass either a mask or is_causal, not both")


def check_qkv(op: str, q, k, v) -> tuple:
    """Validate query, key and value types; returns (batch shape, L, S, E, Ev)."""
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.dtype.name not in FLOAT_DTYPES:
            raise DTypeError(f"{op}: {name} must be a floating point tensor, got {t.dtype.name}")
        if t.ndim < 2:
            raise ShapeError(f"{op}: {name} needs at least 2 dims (length, head_dim), got {fmt(t.shape)}")
    if not (q.dtype is k.dtype is v.dtype):
        raise DTypeError(f"{op}: query, key and value dtypes differ ({q.dtype.name}, {k.dtype.name}, {v.dtype.name})")
    if not dims_equal(q.shape[-1], k.shape[-1]):
        raise ShapeError(f"{op}: query head dim differs from key head dim: query {fmt(q.shape)}, key {fmt(k.shape)}")
    if not dims_equal(k.shape[-2], v.shape[-2]):
        raise ShapeError(f"{op}: key length differs from value length: key {fmt(k.shape)}, value {fmt(v.shape)}")
    for name, d in (("query/key", q.shape[-1]), ("value", v.shape[-1])):
        if isinstance(d, int) and not 1 <= d <= MAX_HEAD_DIM:
            raise ShapeError(f"{op}: unsupported {name} head dim {d} (the fused kernel takes 1..{MAX_HEAD_DIM}): "
                             f"query {fmt(q.shape)}, key {fmt(k.shape)}, value {fmt(v.shape)}")
    batch = broadcast_shapes(op, q.shape[:-2], k.shape[:-2], v.shape[:-2])
    return batch, q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]


def check_mask(op: str, mask, kind: str, dtype, scores_shape: tuple) -> None:
    if kind == "bool" and not mask.dtype.is_bool:
        raise DTypeError(f"{op}: a bool mask was declared but the mask is {mask.dtype.name}")
    if kind == "additive" and not mask.dtype.is_floating_point:
        raise DTypeError(f"{op}: attn_mask must be bool or floating point, got {mask.dtype.name}")
    try:
        full = broadcast_shapes(op, scores_shape, mask.shape)
    except ShapeError:
        full = None
    if full is None or len(full) != len(scores_shape) or not all(dims_equal(a, b) for a, b in zip(full, scores_shape)):
        raise ShapeError(f"{op}: attn_mask {fmt(mask.shape)} does not broadcast to the scores {fmt(scores_shape)}")


def _check_rng(op: str, rng) -> None:
    if rng is None:
        return
    for t in rng:
        if t.dtype is not D.int64 or t.ndim != 0:
            raise DTypeError(f"{op}: dropout seed and offset must be 0-d int64 tensors")


def _infer_attention(types, attrs):
    _check_attrs("attention", attrs)
    (q, k, v), mask, rng = split_inputs(types, attrs, 3)
    batch, L, S, _, Ev = check_qkv("attention", q, k, v)
    if mask is not None:
        check_mask("attention", mask, attrs["mask"], q.dtype, batch + (L, S))
    _check_rng("attention", rng)
    return TensorType(batch + (L, Ev), q.dtype)


def _infer_lse(types, attrs):
    _check_attrs("attention_lse", attrs)
    (q, k), mask, _ = split_inputs(types, attrs, 2)
    batch, L, S, _, _ = check_qkv("attention_lse", q, k, k)
    if mask is not None:
        check_mask("attention_lse", mask, attrs["mask"], q.dtype, batch + (L, S))
    return TensorType(batch + (L,), _stats_type(q))


def _stats_type(q) -> TensorType:
    return D.float32 if q.dtype is not D.float64 else D.float64


def _infer_delta(types, attrs):
    _check_attrs("attention_delta", attrs)
    (q, k, v, g), mask, rng = split_inputs(types, attrs, 4)
    batch, L, S, E, Ev = check_qkv("attention_delta", q, k, v)
    if mask is not None:
        check_mask("attention_delta", mask, attrs["mask"], q.dtype, batch + (L, S))
    _check_rng("attention_delta", rng)
    return TensorType(batch + (L, 3), _stats_type(q))


def _infer_dq(types, attrs):
    (q, k, v, g, stats), mask, rng = split_inputs(types, attrs, 5)
    batch, L, S, E, Ev = check_qkv("attention_dq", q, k, v)
    return TensorType(batch + (L, E), q.dtype)


def _infer_dkv(types, attrs):
    (q, k, v, g, stats), mask, rng = split_inputs(types, attrs, 5)
    batch, L, S, E, Ev = check_qkv("attention_dkv", q, k, v)
    return TensorType(batch + (S, E + Ev), q.dtype)


# ---------------------------------------------------------------- NumPy references

def _compute(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64 if a.dtype == np.float64 else np.float32)


# The references work in place on the score array they create: the same operations in the same
# order as the formulas, without an L x S temporary per step (on the numpy backend these are the
# attention's whole cost: a 2x4x256x256 causal forward took 6 ms against 2.6 ms for torch's).

def _scores(q, k, mask, scale, is_causal, kind, first_query=0):
    """q @ k^T * scale, masked; `first_query`: the position of q's first row (a block of queries,
    head_blocks.py), which the causal mask counts from."""
    q, k = _compute(q), _compute(k)
    s = np.matmul(q, np.swapaxes(k, -1, -2))
    s *= np.asarray(scale, s.dtype)
    L, S = s.shape[-2:]
    if is_causal:
        np.copyto(s, -np.inf, where=np.arange(S)[None, :] > np.arange(first_query, first_query + L)[:, None])
    if kind == "bool":
        s = np.where(mask, s, -np.inf)
    elif kind == "additive":
        s = s + _compute(mask)
    return s


def _into(ufunc, a, b):
    """ufunc(a, b), written over `a` (an array this module made) when the result has a's shape and
    dtype; a new array when broadcasting widens it (a mask or statistics with more batch dims)."""
    if np.broadcast_shapes(a.shape, np.shape(b)) == a.shape and np.result_type(a, b) == a.dtype:
        return ufunc(a, b, out=a)
    return ufunc(a, b)


def _exp_from_max(s):
    """s := exp(s - m) in place, m = the row max (0 for a fully masked row, so it stays 0); returns m."""
    top = s.max(-1, keepdims=True)
    top[np.isinf(top)] = 0
    s -= top
    np.exp(s, out=s)
    return top


def _softmax_rows(s):
    _exp_from_max(s)
    total = s.sum(-1, keepdims=True)
    total[total == 0] = 1
    s /= total
    return s


def _keep(rng, shape, p):
    seed, offset = int(rng[0]), int(rng[1])
    return philox.uniform(seed, offset, tuple(shape)) >= np.float32(p)


def _np_attention(*arrays, scale, is_causal=False, mask="none", dropout_p=0.0, first_query=0):
    (q, k, v), m, rng = split_inputs(arrays, {"mask": mask, "dropout_p": dropout_p}, 3)
    probs = _softmax_rows(_scores(q, k, m, scale, is_causal, mask, first_query))
    if dropout_p > 0:
        probs = np.where(_keep(rng, probs.shape, dropout_p), probs * (1.0 / (1.0 - dropout_p)), 0)
    return np.matmul(probs, _compute(v))


def _np_lse(*arrays, scale, is_causal=False, mask="none", dropout_p=0.0, first_query=0):
    (q, k), m, _ = split_inputs(arrays, {"mask": mask}, 2)
    s = _scores(q, k, m, scale, is_causal, mask, first_query)
    safe = _exp_from_max(s)
    return (np.log(s.sum(-1, keepdims=True)) + safe)[..., 0]


def _dp(g, v, rng, shape, dropout_p):
    """(dp = g @ v^T dropped out as the forward dropped p, the keep mask or None)."""
    dp = np.matmul(_compute(g), np.swapaxes(_compute(v), -1, -2))
    if dropout_p <= 0:
        return dp, None
    keep = _keep(rng, shape, dropout_p)
    return np.where(keep, dp * (1.0 / (1.0 - dropout_p)), 0), keep


def _np_delta(*arrays, scale, is_causal=False, mask="none", dropout_p=0.0, first_query=0):
    (q, k, v, g), m, rng = split_inputs(arrays, {"mask": mask, "dropout_p": dropout_p}, 4)
    e = _scores(q, k, m, scale, is_causal, mask, first_query)
    top = _exp_from_max(e)                          # a fully masked row: p = 0, never NaN
    dp, _ = _dp(g, v, rng, e.shape, dropout_p)
    z = e.sum(-1)
    safe = np.where(z == 0, 1, z)
    dp = _into(np.multiply, dp, e)
    return np.stack([np.where(z == 0, 0, dp.sum(-1) / safe), top[..., 0], np.where(z == 0, 0, 1 / safe)], -1)


def _backward_parts(arrays, scale, is_causal, mask, dropout_p, first_query=0):
    """(q, k, v, g, p dropped out as the forward dropped it, dS = p * (dp - delta))."""
    (q, k, v, g, stats), m, rng = split_inputs(arrays, {"mask": mask, "dropout_p": dropout_p}, 5)
    p = _scores(q, k, m, scale, is_causal, mask, first_query)
    stats = _compute(stats)
    p = _into(np.subtract, p, stats[..., 1:2])
    np.exp(p, out=p)
    p = _into(np.multiply, p, stats[..., 2:])
    ds, keep = _dp(g, v, rng, p.shape, dropout_p)
    pd = p if keep is None else np.where(keep, p * (1.0 / (1.0 - dropout_p)), 0)
    ds = _into(np.multiply, _into(np.subtract, ds, stats[..., :1]), p)
    return q, k, v, g, pd, ds


def _np_dq(*arrays, scale, is_causal=False, mask="none", dropout_p=0.0, first_query=0):
    q, k, v, g, pd, ds = _backward_parts(arrays, scale, is_causal, mask, dropout_p, first_query)
    dq = np.matmul(ds, _compute(k))
    dq *= scale
    return dq


def _sum_to(a: np.ndarray, shape: tuple) -> np.ndarray:
    lead = a.ndim - len(shape)
    a = a.sum(tuple(range(lead))) if lead else a
    dims = tuple(d for d, n in enumerate(shape) if n == 1 and a.shape[d] != 1)
    return a.sum(dims, keepdims=True) if dims else a


def _np_dkv(*arrays, scale, is_causal=False, mask="none", dropout_p=0.0, first_query=0):
    q, k, v, g, pd, ds = _backward_parts(arrays, scale, is_causal, mask, dropout_p, first_query)
    dk = np.matmul(np.swapaxes(ds, -1, -2), _compute(q))
    dk *= scale
    dv = np.matmul(np.swapaxes(pd, -1, -2), _compute(g))
    return np.concatenate([dk, dv], -1)


# ---------------------------------------------------------------- the vjp

def _attention_vjp(g, out, *inputs, scale, is_causal=False, mask="none", dropout_p=0.0):
    """Fused backward: three kernels that recompute the scores blockwise (module docstring)."""
    from tritonflow.ops.lazy_api import apply
    from tritonflow.ops.movement import sum_to_shape
    (q, k, v), m, rng = split_inputs(list(inputs), {"mask": mask, "dropout_p": dropout_p}, 3)
    attrs = {"scale": scale, "is_causal": is_causal, "mask": mask, "dropout_p": dropout_p}
    extra = ([m] if m is not None else []) + (list(rng) if rng is not None else [])
    stats = apply(ATTENTION_DELTA, [q, k, v, g] + extra, attrs)
    dq = apply(ATTENTION_DQ, [q, k, v, g, stats] + extra, attrs)
    dkv = apply(ATTENTION_DKV, [q, k, v, g, stats] + extra, attrs)
    e = q.shape[-1]
    dk = T.narrow(dkv, -1, 0, e)
    dv = T.narrow(dkv, -1, e, dkv.shape[-1] - e)
    grads = [sum_to_shape(dq, q.shape), sum_to_shape(dk, k.shape), sum_to_shape(dv, v.shape)]
    if mask == "additive":
        grads.append(_additive_mask_grad(q, k, v, g, m, stats, rng, scale, dropout_p))
    elif mask == "bool":
        grads.append(None)
    grads += [None] * (len(inputs) - len(grads))
    return tuple(grads)


def _additive_mask_grad(q, k, v, g, m, stats, rng, scale, dropout_p):
    """d(loss)/d(additive mask) = dS summed to the mask's shape.

    This is an L x S tensor by nature, so it is written out with ordinary ops; a compiled graph
    whose mask does not require grad drops it (dead code).
    """
    from tritonflow.ops.lazy_api import apply
    from tritonflow.ops.creation import PHILOX_UNIFORM
    from tritonflow.ops.movement import sum_to_shape
    acc = stats.dtype
    s = T.matmul(T.cast(q, acc), T.transpose(T.cast(k, acc), -2, -1)) * scale + T.cast(m, acc)
    # exp(-inf - m) = 0 where masked; a fully masked row has 1 / z = 0
    p = T.exp(s - T.narrow(stats, -1, 1, 1)) * T.narrow(stats, -1, 2, 1)
    dp = T.matmul(T.cast(g, acc), T.transpose(T.cast(v, acc), -2, -1))
    if dropout_p > 0:
        u = apply(PHILOX_UNIFORM, list(rng), {"shape": tuple(p.shape), "lane": 0})
        dp = T.where(u >= dropout_p, dp * (1.0 / (1.0 - dropout_p)), 0.0)
    ds = p * (dp - T.narrow(stats, -1, 0, 1))
    return T.cast(sum_to_shape(ds, m.shape), m.dtype)


def _samples(template: str):
    """Small cases for the generated op-table tests (plain, causal, additive mask, broadcast batch)."""
    def make(dt):
        if dt.name not in FLOAT_DTYPES:
            return []
        if dt.is_low_precision and template != "attention_lse":
            # Half-precision results carry the rounding of p before the p @ v (and dS @ k) products,
            # beyond the table's generic tolerance; tests/templates checks them with their own.
            return []
        r = np.random.default_rng(11)

        def a(*shape):
            return r.uniform(-1, 1, shape).astype(dt.np)
        cases = [
            ([a(2, 5, 8), a(2, 7, 8), a(2, 7, 4)], {"scale": 0.5, "is_causal": True}),
            ([a(3, 8), a(6, 8), a(6, 8)], {"scale": 0.3, "is_causal": False}),
            ([a(2, 4, 8), a(1, 5, 8), a(2, 5, 8), a(4, 5)], {"scale": 0.4, "is_causal": False, "mask": "additive"}),
        ]
        out = []
        for arrays, attrs in cases:
            attrs = {"mask": "none", "dropout_p": 0.0, **attrs}
            q, k, v = arrays[:3]
            mask = arrays[3:]
            if template == "attention":
                out.append((arrays, attrs))
            elif template == "attention_lse":
                out.append(([q, k] + mask, attrs))
            else:
                g = a(*_np_attention(q, k, v, *mask, **attrs).shape)
                if template == "attention_delta":
                    out.append(([q, k, v, g] + mask, attrs))
                    continue
                wide = [x.astype(np.float64) for x in (q, k, v, g, *mask)]
                stats = _np_delta(*wide, **attrs).astype(np.float64 if dt.name == "float64" else np.float32)
                out.append(([q, k, v, g, stats] + mask, attrs))
        return out
    return make


ATTENTION = register(OpDef(
    "attention", Kind.MATMUL, _infer_attention, blockwise(_np_attention, QUERY_ROWS), _attention_vjp, triton="attention",
    samples=_samples("attention"), dtypes=FLOAT_DTYPES,
    doc="softmax(q @ k^T * scale + mask) @ v with dropout, fused (never stores the scores)"))

ATTENTION_LSE = register(OpDef(
    "attention_lse", Kind.MATMUL, _infer_lse, blockwise(_np_lse, QUERY_VECTOR), None, triton="attention_lse", differentiable=False,
    samples=_samples("attention_lse"),
    dtypes=FLOAT_DTYPES, doc="log-sum-exp of each scaled, masked score row (attention backward)"))

ATTENTION_DELTA = register(OpDef(
    "attention_delta", Kind.MATMUL, _infer_delta, blockwise(_np_delta, QUERY_ROWS), None, triton="attention_delta", differentiable=False,
    samples=_samples("attention_delta"),
    dtypes=FLOAT_DTYPES, doc="per query row of the recomputed scores: delta = sum_j p * dp, the max, 1 / z (backward)"))

ATTENTION_DQ = register(OpDef(
    "attention_dq", Kind.MATMUL, _infer_dq, blockwise(_np_dq, QUERY_ROWS), None, triton="attention_dq", differentiable=False,
    samples=_samples("attention_dq"),
    dtypes=FLOAT_DTYPES, doc="gradient of attention with respect to the query"))

ATTENTION_DKV = register(OpDef(
    "attention_dkv", Kind.MATMUL, _infer_dkv, blockwise(_np_dkv, KEY_ROWS), None, triton="attention_dkv", differentiable=False,
    samples=_samples("attention_dkv"),
    dtypes=FLOAT_DTYPES, doc="gradients of attention with respect to key and value, packed on the last dim"))


def fused_supported(q, k, v, attn_mask=None, is_causal: bool = False) -> bool:
    """Whether the fused primitive takes this call (else callers keep the written-out form,
    which also produces the detailed errors)."""
    try:
        batch, L, S, _, _ = check_qkv("attention", q, k, v)
    except Exception:
        return False
    for d in (q.shape[-1], v.shape[-1], L, S):
        if not isinstance(d, int):
            return False
    if attn_mask is None:
        return True
    if is_causal or not (attn_mask.dtype.is_bool or attn_mask.dtype.is_floating_point):
        return False
    try:
        check_mask("attention", attn_mask, "bool" if attn_mask.dtype.is_bool else "additive", q.dtype,
                   tuple(batch) + (L, S))
    except Exception:
        return False
    return True
