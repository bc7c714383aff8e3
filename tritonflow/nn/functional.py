"""tritonflow.nn.functional: composite ops written over primitives (used unchanged eagerly and traced).

Numerics: softmax and log_softmax subtract the row max (a row of -inf gives zeros / -inf, never
NaN); layer_norm and rms_norm compute in float32 for half inputs with a two-pass variance;
cross_entropy goes through log_softmax. Convolution, pooling and interpolate are written in
nn/spatial.py and exported here.
"""
from __future__ import annotations

import math

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.api.random import philox_counters
from tritonflow.api.softmax import compute_dtype, float_tensor, log_softmax, softmax  # noqa: F401 (F.softmax)
from tritonflow.dispatch import apply
from tritonflow.errors import DTypeError, ShapeError, TraceError, TritonflowIndexError
from tritonflow.nn.spatial import adaptive_avg_pool2d, avg_pool2d, conv1d, conv2d, interpolate, max_pool2d  # noqa: F401 (F.conv2d, ...)
from tritonflow.ops.attention import ATTENTION, fused_supported
from tritonflow.ops.shapes import broadcast_shapes, fmt
from tritonflow.amp.autocast_mode import autocast_to_float32, autocast_to_low


@autocast_to_low
def linear(x, weight, bias=None):
    """y = x @ weight.T + bias, weight shaped (out_features, in_features) as in PyTorch."""
    if x.shape[-1] != weight.shape[-1]:
        raise ShapeError(f"linear: input features {x.shape[-1]} do not match weight {fmt(weight.shape)} "
                         f"(expects (out_features, {x.shape[-1]}))")
    out = T.matmul(x, T.transpose(weight, 0, 1) if weight.ndim == 2 else weight)
    if bias is not None:
        out = out + bias
    return out


def pad(x, pad, mode: str = "constant", value: float = 0.0):
    """F.pad: (low, high) pairs from the last dim backwards; negative amounts crop (constant mode only)."""
    return T.pad(x, pad, mode=mode, value=value)


def relu(x):
    return T.relu(x)


def leaky_relu(x, negative_slope=0.01):
    return T.where(x > 0, x, x * negative_slope)


def gelu(x, approximate: str = "none"):
    x = float_tensor(x, "gelu")
    if approximate not in ("none", "tanh"):
        raise ShapeError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    # Half inputs compute in float32 and round once (as the fused kernel and PyTorch do).
    out_dtype = x.dtype
    x = T.cast(x, compute_dtype(x))
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
        y = x * 0.5 * (T.tanh(inner) + 1.0)
    else:
        y = x * 0.5 * (T.erf(x * (1.0 / math.sqrt(2.0))) + 1.0)
    return T.cast(y, out_dtype)


def silu(x):
    x = float_tensor(x, "silu")
    xf = T.cast(x, compute_dtype(x))
    return T.cast(xf * T.sigmoid(xf), x.dtype)


def sigmoid(x):
    return T.sigmoid(x)


def tanh(x):
    return T.tanh(x)


def _normalized_dims(x, normalized_shape, name):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or k > x.ndim or tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise ShapeError(f"{name}: normalized_shape {fmt(normalized_shape)} does not match the trailing "
                         f"dims of input {fmt(x.shape)}")
    return tuple(range(x.ndim - k, x.ndim))


@autocast_to_float32
def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    x = float_tensor(x, "layer_norm")
    dims = _normalized_dims(x, normalized_shape, "layer_norm")
    out_dtype = x.dtype
    xf = T.cast(x, compute_dtype(x))
    mean = T.mean(xf, dims, keepdim=True)
    centered = xf - mean
    var = T.mean(centered * centered, dims, keepdim=True)
    y = centered * T.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return T.cast(y, out_dtype)


@autocast_to_float32
def rms_norm(x, normalized_shape, weight=None, eps: float | None = None):
    x = float_tensor(x, "rms_norm")
    dims = _normalized_dims(x, normalized_shape, "rms_norm")
    if eps is None:
        eps = float(D.finfo(x.dtype).eps)
    out_dtype = x.dtype
    xf = T.cast(x, compute_dtype(x))
    y = xf * T.rsqrt(T.mean(xf * xf, dims, keepdim=True) + eps)
    if weight is not None:
        y = y * weight
    return T.cast(y, out_dtype)


def dropout(x, p: float = 0.5, training: bool = True):
    if not 0.0 <= p <= 1.0:
        raise ShapeError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return T.zeros_like(x)
    keep = T.rand(tuple(x.shape), device=x.device) >= p
    return T.where(keep, x * (1.0 / (1.0 - p)), 0.0)


def one_hot(labels, num_classes: int = -1):
    """int64 (..., num_classes) with a 1 at each label, as torch's; num_classes=-1 means one more than
    the largest label (eager only: under jit it must be given). Labels are checked when eager."""
    if not T.is_tensor(labels) or not labels.dtype.is_integer:
        raise DTypeError(f"one_hot: labels must be an integer tensor, got {getattr(labels, 'dtype', type(labels).__name__)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < -1:
        raise ShapeError(f"one_hot: num_classes must be a non-negative int or -1, got {num_classes!r}")
    if labels._node is None and labels.numel() > 0:
        values = labels.numpy()
        if values.min() < 0:
            raise TritonflowIndexError(f"one_hot: class values must be non-negative, got {values.min()}")
        if num_classes >= 0 and values.max() >= num_classes:
            raise TritonflowIndexError(f"one_hot: class {values.max()} is out of range for num_classes={num_classes}")
    if num_classes == -1:
        if labels._node is not None:
            raise TraceError("one_hot: num_classes=-1 reads the largest label, which is not known while tracing; "
                             "pass num_classes")
        num_classes = int(labels.numpy().max()) + 1 if labels.numel() else 0
    classes = T.iota(tuple(labels.shape) + (num_classes,), labels.ndim, device=labels.device)
    return T.cast(T.unsqueeze(labels, -1) == classes, D.int64)


def embedding(indices, weight):
    if not T.is_tensor(indices) or not indices.dtype.is_integer:
        raise DTypeError(f"embedding: indices must be an integer tensor, got "
                         f"{getattr(indices, 'dtype', type(indices).__name__)}")
    flat = T.reshape(indices, (-1,))
    rows = T.index_select(weight, 0, flat)
    return T.reshape(rows, tuple(indices.shape) + (weight.shape[-1],))


def _reduce(loss, reduction, name, weight_sum=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return T.sum(loss)
    if reduction == "mean":
        if weight_sum is not None:
            return T.sum(loss) / weight_sum
        return T.mean(loss)
    raise ShapeError(f"{name}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def _class_weights(weight, target, valid, dtype):
    """Each target's class weight (0 where ignored), shaped like `target`."""
    w = T.cast(valid, dtype)
    if weight is None:
        return w
    safe = T.where(valid, target, 0)
    picked = T.reshape(T.index_select(T.cast(weight, dtype), 0, T.reshape(safe, (-1,))), tuple(safe.shape))
    return w * picked


def _check_weight(weight, classes: int, name: str) -> None:
    if weight is None:
        return
    if not T.is_tensor(weight) or not weight.dtype.is_floating_point:
        raise DTypeError(f"{name}: weight must be a floating point tensor of one weight per class, got "
                         f"{getattr(weight, 'dtype', type(weight).__name__)}")
    if tuple(weight.shape) != (classes,):
        raise ShapeError(f"{name}: weight {fmt(weight.shape)} must hold one weight per class ({classes},)")


@autocast_to_float32
def nll_loss(log_probs, target, weight=None, ignore_index: int = -100, reduction: str = "mean"):
    if log_probs.ndim < 1:
        raise ShapeError("nll_loss: input needs a class dimension")
    if not target.dtype.is_integer:
        raise DTypeError(f"nll_loss: target must be an integer tensor of class indices, got {target.dtype.name}")
    unbatched = log_probs.ndim == 1
    if unbatched:  # (C,) with a 0-d target: a batch of one, and reduction="none" gives a 0-d loss
        log_probs, target = T.unsqueeze(log_probs, 0), T.unsqueeze(target, 0)
    expected = (log_probs.shape[0],) + tuple(log_probs.shape[2:])
    if tuple(target.shape) != expected:
        raise ShapeError(f"nll_loss: target shape {fmt(target.shape)} does not match input {fmt(log_probs.shape)} "
                         f"(expected {fmt(expected)})")
    _check_weight(weight, log_probs.shape[1], "nll_loss")
    valid = target != ignore_index
    safe = T.where(valid, target, 0)
    picked = T.squeeze(T.gather(log_probs, 1, T.unsqueeze(safe, 1)), 1)
    w = _class_weights(weight, target, valid, log_probs.dtype)
    loss = -(picked * w)
    if unbatched and reduction == "none":
        return T.squeeze(loss, 0)
    return _reduce(loss, reduction, "nll_loss", T.sum(w) if reduction == "mean" else None)


@autocast_to_float32
def cross_entropy(logits, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0):
    """PyTorch's F.cross_entropy: class indices (with ignore_index) or class probabilities.

    With label smoothing s over C classes the loss is (1 - s) * nll + s * smooth, where the
    smoothing term is -sum_c w_c * logp_c / C (the class weights apply to it as well) and, for
    reduction="mean" over class indices, both terms are divided by the summed weights of the
    targets that are not ignored.
    """
    float_tensor(logits, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ShapeError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    class_dim = 1 if logits.ndim > 1 else 0
    classes = logits.shape[class_dim]
    _check_weight(weight, classes, "cross_entropy")
    logp = log_softmax(T.cast(logits, compute_dtype(logits)), class_dim)
    weighted = logp
    if weight is not None:  # the weights broadcast along the class dim
        per_class = (1,) * class_dim + (classes,) + (1,) * (logits.ndim - class_dim - 1)
        weighted = logp * T.reshape(T.cast(weight, logp.dtype), per_class)
    if target.dtype.is_floating_point:  # class probabilities; "mean" averages over the samples
        if tuple(target.shape) != tuple(logits.shape):
            raise ShapeError(f"cross_entropy: probability target {fmt(target.shape)} must match logits "
                             f"{fmt(logits.shape)}")
        target = target * (1.0 - label_smoothing) + label_smoothing / classes
        loss = -T.sum(weighted * target, class_dim)
        return _reduce(loss, reduction, "cross_entropy")
    if label_smoothing == 0.0:
        return nll_loss(logp, target, weight, ignore_index, reduction)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    valid = target != ignore_index
    # where, not a product: an ignored row whose logits hold -inf must give 0, not NaN
    smooth = T.where(valid, -T.sum(weighted, class_dim), 0.0)
    if reduction == "mean":
        smooth = T.sum(smooth) / T.sum(_class_weights(weight, target, valid, logp.dtype))
    else:
        smooth = _reduce(smooth, reduction, "cross_entropy")
    return nll * (1.0 - label_smoothing) + smooth * (label_smoothing / classes)


@autocast_to_float32
def mse_loss(input, target, reduction: str = "mean"):
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


@autocast_to_low
def fused_attention(q, k, v, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False, scale=None,
                    generator=None):
    """The fused attention primitive (tritonflow/ops/attention.py) with scaled_dot_product_attention's meaning.

    attn_mask: bool (True = attend) or float (added to the scores), broadcastable to
    (batch..., L, S). Raises ShapeError/DTypeError at the call (or trace) for bad shapes and dtypes.
    Dropout reserves one Philox counter per score element, the reservation `tritonflow.rand` of the
    scores' shape makes, so it draws exactly the numbers F.dropout draws for the written-out form.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0
    kind = "none" if attn_mask is None else ("bool" if attn_mask.dtype.is_bool else "additive")
    inputs = [q, k, v] + ([attn_mask] if attn_mask is not None else [])
    attrs = {"scale": float(scale), "is_causal": bool(is_causal), "mask": kind, "dropout_p": float(dropout_p)}
    if dropout_p > 0:
        batch = broadcast_shapes("attention", tuple(q.shape[:-2]), tuple(k.shape[:-2]), tuple(v.shape[:-2]))
        n = 1
        for d in tuple(batch) + (q.shape[-2], k.shape[-2]):
            n = n * d
        inputs += philox_counters(n, 0, generator, "attention")
    return apply(ATTENTION, inputs, attrs)


@autocast_to_low
def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None):
    """softmax(q @ k^T * scale + mask) @ v over the last two dims (the written-out form)."""
    for name, t in (("query", q), ("key", k), ("value", v)):
        if not T.is_tensor(t) or not t.dtype.is_floating_point:
            raise DTypeError(f"scaled_dot_product_attention: {name} must be a floating point tensor")
        if t.ndim < 2:
            raise ShapeError(f"scaled_dot_product_attention: {name} needs at least 2 dims, got {fmt(t.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"scaled_dot_product_attention: query head dim {q.shape[-1]} differs from key "
                         f"head dim {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: key length {k.shape[-2]} differs from value "
                         f"length {v.shape[-2]}")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if fused_supported(q, k, v, attn_mask, is_causal):  # one fused kernel, forward and backward
        return fused_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)
    scores = T.matmul(q, T.transpose(k, -2, -1)) * scale
    L, S = q.shape[-2], k.shape[-2]
    if is_causal:
        if attn_mask is not None:
            raise ShapeError("scaled_dot_product_attention: pass either attn_mask or is_causal, not both")
        keep = T.iota((L, S), 1, device=q.device) <= T.iota((L, S), 0, device=q.device)
        scores = T.where(keep, scores, float("-inf"))
    elif attn_mask is not None:
        try:
            broadcast_shapes("scaled_dot_product_attention", scores.shape, attn_mask.shape)
        except ShapeError:
            raise ShapeError(f"scaled_dot_product_attention: attn_mask {fmt(attn_mask.shape)} does not "
                             f"broadcast to the scores {fmt(scores.shape)}") from None
        if attn_mask.dtype.is_bool:
            scores = T.where(attn_mask, scores, float("-inf"))
        elif attn_mask.dtype.is_floating_point:
            scores = scores + attn_mask
        else:
            raise DTypeError(f"scaled_dot_product_attention: attn_mask must be bool or float, got "
                             f"{attn_mask.dtype.name}")
    probs = softmax(scores, -1)
    if dropout_p > 0.0:
        probs = dropout(probs, dropout_p, True)
    return T.matmul(probs, v)
