"""tritonflow.nn: MultiheadAttention, PyTorch's layout and masks, with a causal option.

Framework stage. Parameters match torch.nn.MultiheadAttention (in_proj_weight, in_proj_bias,
out_proj), so state dicts move between the two. Masks follow PyTorch's MHA convention: a bool
attn_mask or key_padding_mask is True where attention is NOT allowed.
"""
from __future__ import annotations

import math

import tritonflow.api as T
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.nn import functional as F
from tritonflow.nn import init
from tritonflow.nn.layers import Linear, _empty
from tritonflow.nn.modules import Module
from tritonflow.nn.parameter import Parameter


class MultiheadAttention(Module):
    _repr_fields = ("embed_dim", "num_heads", "causal")

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, causal: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ShapeError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.causal = causal
        self.in_proj_weight = Parameter(_empty((3 * embed_dim, embed_dim), device, dtype))
        if bias:
            self.in_proj_bias = Parameter(_empty((3 * embed_dim,), device, dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        init.xavier_uniform_(self.in_proj_weight)
        if bias:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _heads(self, x, length: int, batch: int):
        # (batch, length, embed) -> (batch, heads, length, head_dim)
        return T.permute(T.reshape(x, (batch, length, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def forward(self, query, key=None, value=None, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        key = query if key is None else key
        value = key if value is None else value
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (T.unsqueeze(t, 1) for t in (query, key, value))
        elif not self.batch_first:
            query, key, value = (T.transpose(t, 0, 1) for t in (query, key, value))
        if query.ndim != 3 or query.shape[-1] != self.embed_dim:
            raise ShapeError(f"MultiheadAttention: query must be (batch, length, {self.embed_dim}) "
                             f"(or sequence-first), got {tuple(query.shape)}")
        if unbatched:
            query, key, value = (T.transpose(t, 0, 1) for t in (query, key, value))
        batch, tgt_len, _ = query.shape
        src_len = key.shape[1]
        e = self.embed_dim
        b = self.in_proj_bias
        w_q, w_k, w_v = (T.narrow(self.in_proj_weight, 0, i * e, e) for i in range(3))
        b_q, b_k, b_v = (None, None, None) if b is None else (T.narrow(b, 0, i * e, e) for i in range(3))
        q = self._heads(F.linear(query, w_q, b_q), tgt_len, batch)
        k = self._heads(F.linear(key, w_k, b_k), src_len, batch)
        v = self._heads(F.linear(value, w_v, b_v), src_len, batch)

        scores = T.matmul(q, T.transpose(k, -2, -1)) * (1.0 / math.sqrt(self.head_dim))
        if is_causal or self.causal:
            allowed = T.iota((tgt_len, src_len), 1, device=q.device) <= T.iota((tgt_len, src_len), 0, device=q.device)
            scores = T.where(allowed, scores, float("-inf"))
        if attn_mask is not None:
            scores = self._apply_mask(scores, attn_mask, batch, tgt_len, src_len)
        if key_padding_mask is not None:
            if not key_padding_mask.dtype.is_bool or tuple(key_padding_mask.shape) != (batch, src_len):
                raise ShapeError(f"MultiheadAttention: key_padding_mask must be bool of shape {(batch, src_len)}, "
                                 f"got {key_padding_mask.dtype.name} {tuple(key_padding_mask.shape)}")
            padded = T.reshape(key_padding_mask, (batch, 1, 1, src_len))
            scores = T.where(padded, float("-inf"), scores)
        probs = F.softmax(scores, -1)
        if self.dropout > 0.0 and self.training:
            probs = F.dropout(probs, self.dropout, True)
        out = T.matmul(probs, v)                                   # (batch, heads, tgt, head_dim)
        out = T.reshape(T.permute(out, (0, 2, 1, 3)), (batch, tgt_len, e))
        out = self.out_proj(out)
        if unbatched:
            out = T.squeeze(out, 0)
        elif not self.batch_first:
            out = T.transpose(out, 0, 1)
        weights = None
        if need_weights:
            weights = T.mean(probs, 1) if average_attn_weights else probs
            if unbatched:
                weights = T.squeeze(weights, 0)
        return out, weights

    def _apply_mask(self, scores, mask, batch, tgt_len, src_len):
        if mask.ndim == 2:
            mask = T.reshape(mask, (1, 1, tgt_len, src_len))
        elif mask.ndim == 3:
            mask = T.reshape(mask, (batch, self.num_heads, tgt_len, src_len))
        else:
            raise ShapeError(f"MultiheadAttention: attn_mask must be 2-D or 3-D, got {tuple(mask.shape)}")
        if mask.dtype.is_bool:
            return T.where(mask, float("-inf"), scores)
        if mask.dtype.is_floating_point:
            return scores + mask
        raise DTypeError(f"MultiheadAttention: attn_mask must be bool or float, got {mask.dtype.name}")
