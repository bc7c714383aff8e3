"""tritonflow.models: causal self-attention, over a whole sequence or through a static KV cache.

Framework stage (models). GPT-2 and Llama share these two functions. Heads are
(batch, heads, length, head_dim). Grouped-query attention (fewer key/value heads than query
heads) never repeats the keys: the query heads that share a key/value head are grouped into one
extra batch dimension, (batch, kv_heads, group, length, head_dim), against keys of shape
(batch, kv_heads, 1, length, head_dim), and the fused attention primitive broadcasts them.

The KV cache is static: one key and one value tensor per layer of shape
(batch, kv_heads, capacity, head_dim), allocated once per generation, with the position of the
chunk being processed given as a 0-d int64 tensor `start`. A chunk of T tokens is written at
positions start..start+T-1 with a gather and a `where` over the capacity, and its queries attend
to every cached key at a position <= their own through a bool mask. Every shape is therefore
independent of the position: one compiled graph serves every decoding step (no recompiles per
token), and another every prompt of one padded length. Positions past the ones written hold
zeros or stale values; the mask never lets a query see them.
"""
from __future__ import annotations

import tritonflow.api as T
from tritonflow.nn import functional as F


def _grouped(q, kv_heads: int):
    """(batch, heads, L, D) -> (batch, kv_heads, heads // kv_heads, L, D): query heads by shared kv head."""
    b, h, length, d = q.shape
    return T.reshape(q, (b, kv_heads, h // kv_heads, length, d))


def _attend(q, k, v, scale: float, dropout_p: float, attn_mask=None, is_causal: bool = False):
    heads, kv_heads = q.shape[1], k.shape[1]
    if heads == kv_heads:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                              is_causal=is_causal, scale=scale)
    out = F.scaled_dot_product_attention(_grouped(q, kv_heads), T.unsqueeze(k, 2), T.unsqueeze(v, 2),
                                         attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                                         scale=scale)
    b, _, group, length, d = out.shape
    return T.reshape(out, (b, heads, length, d))


def causal_attention(q, k, v, scale: float, dropout_p: float = 0.0):
    """Each position attends to itself and the positions before it (no cache)."""
    return _attend(q, k, v, scale, dropout_p, is_causal=True)


def write_cache(cache, chunk, start):
    """`cache` (B, H, C, D) with `chunk` (B, H, T, D) written at positions start .. start+T-1."""
    capacity, length = cache.shape[2], chunk.shape[2]
    if length == 1:  # a decoding step: the token broadcasts into its slot, no gather needed
        slot = T.reshape(T.iota((capacity,), 0, device=cache.device) == start, (capacity, 1))
        return T.where(slot, chunk, cache)
    offset = T.iota((capacity,), 0, device=cache.device) - start        # where each slot reads the chunk
    inside = T.logical_and(offset >= 0, offset < length)
    picked = T.index_select(chunk, 2, T.clamp(offset, 0, length - 1))   # (B, H, C, D)
    return T.where(T.reshape(inside, (capacity, 1)), picked, cache)


def cached_attention(q, k, v, cache_k, cache_v, start, scale: float):
    """Attention of a chunk of queries at positions start.. over the cache with the chunk's own
    keys and values written in. Returns (output, new cache_k, new cache_v)."""
    cache_k = write_cache(cache_k, k, start)
    cache_v = write_cache(cache_v, v, start)
    length, capacity = q.shape[2], cache_k.shape[2]
    query_pos = T.reshape(T.iota((length,), 0, device=q.device) + start, (length, 1))
    key_pos = T.iota((1, capacity), 1, device=q.device)
    visible = key_pos <= query_pos                                      # (T, C): causal over the cache
    return _attend(q, cache_k, cache_v, scale, 0.0, attn_mask=visible), cache_k, cache_v


def split_heads(x, heads: int, head_dim: int):
    """(batch, length, heads * head_dim) -> (batch, heads, length, head_dim)."""
    b, length, _ = x.shape
    return T.permute(T.reshape(x, (b, length, heads, head_dim)), (0, 2, 1, 3))


def merge_heads(x):
    """(batch, heads, length, head_dim) -> (batch, length, heads * head_dim)."""
    b, h, length, d = x.shape
    return T.reshape(T.permute(x, (0, 2, 1, 3)), (b, length, h * d))
