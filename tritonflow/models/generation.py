"""tritonflow.models: `CausalLM.generate` — decoding with a static KV cache, compiled once.

Framework stage (generation). Why a static cache, not `jit(dynamic=True)`: tritonflow's dynamic
shapes make only leading dimensions symbolic, and the length that grows during decoding is an
inner one (batch, heads, *length*, head_dim); a cache that grew would also reallocate every step.
So each generation allocates one key and one value tensor per layer with room for the prompt and
every new token (the capacity, rounded up to a power of two so that nearby lengths share
compiled graphs), and passes the position as a 0-d int64 tensor (see models/attention.py). Two
jitted functions do the work:

- `prefill(model, ids, last, cache, ...)`: the prompt, right-padded to a power-of-two length, in
  one pass; fills the cache and picks the first new token from the logits at position `last`.
  Padding tokens sit after every real one, so causal attention keeps them out of the real
  positions' results, and each one's cache slot is overwritten before any query can see it.
  One compile per padded length: at most log2(capacity) of them.
- `step(model, token, position, cache, ...)`: one token in, the next token out, the cache updated
  and the position advanced, all inside the graph. Every decoding step of a generation, and of
  every later generation with the same batch size, capacity and sampling settings, reuses one
  compiled graph: `model.decoder().step.cache_info()` shows one miss.

Sampling runs inside both graphs (models/sampling.py), so only the chosen token ids come back.
Generation runs under no_grad and in eval mode (the model's mode is restored afterwards).
"""
from __future__ import annotations

import numpy as np

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.autograd import no_grad
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.jit_function import jit
from tritonflow.models.pretrained import PretrainedModel
from tritonflow.models.sampling import check_sampling, next_token
from tritonflow.nn.modules import Module

MIN_BUCKET = 16


def bucket(n: int, limit: int) -> int:
    """The power of two >= n (at least MIN_BUCKET), capped at `limit`."""
    size = MIN_BUCKET
    while size < n:
        size *= 2
    return min(size, limit)


def _prefill(model, ids, last, cache, sampling):
    hidden, cache = model.forward_cached(ids, 0, cache)
    logits = model.logits(T.index_select(hidden, 1, last))
    token = next_token(T.reshape(logits, (logits.shape[0], logits.shape[-1])), *sampling)
    return token, last + 1, cache


def _step(model, token, position, cache, sampling):
    hidden, cache = model.forward_cached(T.unsqueeze(token, 1), position, cache)
    logits = model.logits(hidden)
    token = next_token(T.reshape(logits, (logits.shape[0], logits.shape[-1])), *sampling)
    return token, position + 1, cache


class CachedBlock(Module):
    """A pre-norm residual block (attn_norm, attn, mlp_norm, mlp) run through the KV cache; its
    attention's `forward_cached(x, *args, cache_k, cache_v)` returns (out, cache_k, cache_v)."""

    def forward_cached(self, x, *args):
        h, cache_k, cache_v = self.attn.forward_cached(self.attn_norm(x), *args)
        x = x + h
        return x + self.mlp(self.mlp_norm(x)), cache_k, cache_v


def run_cached(blocks, x, cache: list, *args) -> tuple:
    """x through every block with its layer's keys and values: (x, the new cache list)."""
    new_cache = []
    for i, block in enumerate(blocks):
        x, k, v = block.forward_cached(x, *args, cache[2 * i], cache[2 * i + 1])
        new_cache += [k, v]
    return x, new_cache


class Decoder:
    """A model's compiled prefill and decoding step (module docstring); one per backend."""

    def __init__(self, backend: str | None = None) -> None:
        self.prefill = jit(_prefill, backend=backend)
        self.step = jit(_step, backend=backend)


class CausalLM(PretrainedModel):
    """A decoder-only language model. Families provide `max_positions`, `cache_layout()` ->
    (layers, kv_heads, head_dim), `forward_cached(ids, start, cache)` -> (hidden, cache) and an
    `lm_head` (or their own `logits(hidden)`)."""

    def logits(self, hidden):
        return self.lm_head(hidden)

    def check_ids(self, ids) -> None:
        if not T.is_tensor(ids) or not ids.dtype.is_integer:
            raise DTypeError(f"{type(self).__name__}: token ids must be an integer tensor, got "
                             f"{getattr(ids, 'dtype', type(ids).__name__)}")
        if ids.ndim != 2:
            raise ShapeError(f"{type(self).__name__}: token ids must be (batch, length), got shape {tuple(ids.shape)}")
        if ids.shape[1] > self.max_positions:
            raise ShapeError(f"{type(self).__name__}: {ids.shape[1]} tokens exceed the model's "
                             f"{self.max_positions} positions")

    def new_cache(self, batch: int, capacity: int) -> list:
        """Zeroed keys and values, [k0, v0, k1, v1, ...], each (batch, kv_heads, capacity, head_dim)."""
        layers, kv_heads, head_dim = self.cache_layout()
        like = next(iter(self.parameters()))
        return [T.zeros((batch, kv_heads, capacity, head_dim), dtype=like.dtype, device=like.device)
                for _ in range(2 * layers)]

    def decoder(self, backend: str | None = None) -> Decoder:
        """The compiled functions `generate` uses on `backend` (kept, so later calls reuse them)."""
        decoders = self.__dict__.setdefault("_decoders", {})
        if backend not in decoders:
            decoders[backend] = Decoder(backend)
        return decoders[backend]

    def generate(self, ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, *, do_sample: bool = True, eos_token_id: int | None = None,
                 pad_token_id: int | None = None, backend: str | None = None):
        """`ids` (batch, length) followed by up to `max_new_tokens` generated tokens.

        Greedy with do_sample=False or temperature=0; else samples from softmax(logits/temperature)
        restricted by top_k / top_p (models/sampling.py). With eos_token_id, a row that emits it is
        finished: later tokens of that row are pad_token_id (default: eos_token_id), and generation
        stops early once every row has finished.
        """
        squeeze = False
        if not T.is_tensor(ids):
            ids = T.tensor(np.asarray(ids, dtype=np.int64))
        if ids.ndim == 1:
            ids, squeeze = T.unsqueeze(ids, 0), True
        self.check_ids(ids)
        check_sampling(temperature, top_k, top_p)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ShapeError(f"generate: max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
        batch, length = ids.shape
        if length == 0:
            raise ShapeError("generate: the prompt needs at least one token")
        if length + max_new_tokens > self.max_positions:
            raise ShapeError(f"generate: {length} prompt tokens + {max_new_tokens} new ones exceed the model's "
                             f"{self.max_positions} positions")
        if max_new_tokens == 0:
            return ids[0] if squeeze else ids
        was_training = self.training
        self.eval()
        try:
            greedy = not do_sample or temperature == 0.0
            # One static key per behaviour: every greedy call shares a graph whatever its other settings.
            sampling = (0.0, None, None, False) if greedy else (float(temperature), top_k, top_p, True)
            with no_grad():
                new = self._decode(T.cast(ids, D.int64), max_new_tokens, sampling, eos_token_id,
                                   eos_token_id if pad_token_id is None else pad_token_id, backend)
        finally:
            self.train(was_training)
        out = T.cat([T.to(ids, new.device), T.cast(new, ids.dtype)], 1)
        return out[0] if squeeze else out

    def _decode(self, ids, max_new_tokens: int, sampling: tuple, eos: int | None, pad: int | None, backend):
        batch, length = ids.shape
        capacity = bucket(length + max_new_tokens, self.max_positions)
        padded_length = bucket(length, capacity)
        device = next(iter(self.parameters())).device
        padded = T.cat([ids, T.zeros((batch, padded_length - length), dtype=D.int64)], 1)
        decoder = self.decoder(backend)
        cache = self.new_cache(batch, capacity)
        last = T.tensor(length - 1, dtype=D.int64)
        token, position, cache = decoder.prefill(self, T.to(padded, device), T.to(last, device), cache, sampling)
        tokens = [token]
        finished = np.zeros(batch, dtype=bool)
        for _ in range(max_new_tokens - 1):
            if eos is not None:
                finished |= tokens[-1].numpy() == eos
                if finished.all():
                    break
            token, position, cache = decoder.step(self, token, position, cache, sampling)
            tokens.append(token)
        out = T.stack(tokens, 1)
        if eos is not None:
            out = T.to(_pad_after_eos(out.numpy(), eos, pad), device)
        return out


def _pad_after_eos(tokens: np.ndarray, eos: int, pad: int):
    """Tokens after each row's first eos become `pad`."""
    seen = np.cumsum(tokens == eos, axis=1)
    after_first = (seen - (tokens == eos)) > 0
    return T.tensor(np.where(after_first, pad, tokens).astype(np.int64))
