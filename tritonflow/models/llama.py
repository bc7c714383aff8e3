"""tritonflow.models: Llama (RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention).

Framework stage (models). Computes what transformers' LlamaForCausalLM computes and loads its
checkpoints: `Llama.from_pretrained(directory)`. Rotary embeddings are computed from the
positions inside the graph (cos and sin of position * inverse frequency, in float32, as
transformers does), so no table limits or bloats a long context, and the same code serves a
whole sequence and a cached chunk. Only the default rotary scheme is implemented; a config
asking for another (`rope_scaling` / `rope_parameters` with a rope_type such as "llama3" or
"yarn") is refused rather than silently computed wrong.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.models.activations import ACTIVATIONS, activation
from tritonflow.models.attention import cached_attention, causal_attention, merge_heads, split_heads
from tritonflow.models.config import ModelConfig, require
from tritonflow.models.generation import CachedBlock, CausalLM, run_cached
from tritonflow.models.loading import NameMap
from tritonflow.models.pretrained import init_transformer_weights
from tritonflow.nn import Embedding, Linear, ModuleList, RMSNorm
from tritonflow.nn.modules import Module


def _rope_type(spec) -> str:
    return (spec or {}).get("rope_type", (spec or {}).get("type", "default"))


@dataclasses.dataclass
class LlamaConfig(ModelConfig):
    MODEL_TYPE = "llama"
    REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    EXTRA_IGNORED = frozenset({"pretraining_tp"})  # transformers splits its matmuls by it: the same product

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None           # transformers 4.x
    rope_parameters: dict | None = None        # transformers 5.x: {"rope_type": ..., "rope_theta": ...}
    attention_bias: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def check(self, source: str) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "max_position_embeddings"):
            require(getattr(self, name) > 0, source, name, getattr(self, name), "positive sizes")
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            require(self.hidden_size % self.num_attention_heads == 0, source, "num_attention_heads",
                    self.num_attention_heads, f"a head count dividing hidden_size ({self.hidden_size}) "
                                              f"when head_dim is not given")
            self.head_dim = self.hidden_size // self.num_attention_heads
        require(self.num_key_value_heads > 0 and self.num_attention_heads % self.num_key_value_heads == 0,
                source, "num_key_value_heads", self.num_key_value_heads,
                f"a divisor of num_attention_heads ({self.num_attention_heads})")
        require(self.head_dim > 0 and self.head_dim % 2 == 0, source, "head_dim", self.head_dim,
                "an even head dimension (rotary embeddings rotate pairs)")
        require(self.hidden_act in ACTIVATIONS, source, "hidden_act", self.hidden_act, ", ".join(ACTIVATIONS))
        for name in ("rope_scaling", "rope_parameters"):
            spec = getattr(self, name)
            require(_rope_type(spec) == "default", source, name, spec, "only the default rotary embedding "
                    "(rope_type 'default'; scaled variants such as 'linear', 'llama3' or 'yarn' are not built)")
        if self.rope_parameters and "rope_theta" in self.rope_parameters:
            self.rope_theta = float(self.rope_parameters["rope_theta"])

    @property
    def rotary_base(self) -> float:
        return float(self.rope_theta)


def inverse_frequencies(head_dim: int, base: float) -> np.ndarray:
    """1 / base^(2i / head_dim) for i < head_dim / 2, in float32 as transformers computes it."""
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    return (np.float32(1.0) / (np.float32(base) ** exponents)).astype(np.float32)


def rotate(x, cos, sin):
    """x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1) for the halves x1, x2 of the last dim."""
    half = x.shape[-1] // 2
    x1, x2 = T.narrow(x, -1, 0, half), T.narrow(x, -1, half, half)
    return x * cos + T.cat([-x2, x1], -1) * sin


class LlamaAttention(Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = (config.num_attention_heads, config.num_key_value_heads,
                                                    config.head_dim)
        e, bias = config.hidden_size, config.attention_bias
        self.q_proj = Linear(e, self.heads * self.head_dim, bias=bias)
        self.k_proj = Linear(e, self.kv_heads * self.head_dim, bias=bias)
        self.v_proj = Linear(e, self.kv_heads * self.head_dim, bias=bias)
        self.o_proj = Linear(self.heads * self.head_dim, e, bias=bias)
        self.dropout_p = config.attention_dropout
        self.scale = 1.0 / math.sqrt(self.head_dim)

    def _project(self, x, cos, sin):
        q = rotate(split_heads(self.q_proj(x), self.heads, self.head_dim), cos, sin)
        k = rotate(split_heads(self.k_proj(x), self.kv_heads, self.head_dim), cos, sin)
        v = split_heads(self.v_proj(x), self.kv_heads, self.head_dim)
        return T.cast(q, x.dtype), T.cast(k, x.dtype), v

    def forward(self, x, cos, sin):
        q, k, v = self._project(x, cos, sin)
        out = causal_attention(q, k, v, self.scale, self.dropout_p if self.training else 0.0)
        return self.o_proj(merge_heads(out))

    def forward_cached(self, x, cos, sin, start, cache_k, cache_v):
        q, k, v = self._project(x, cos, sin)
        out, cache_k, cache_v = cached_attention(q, k, v, cache_k, cache_v, start, self.scale)
        return self.o_proj(merge_heads(out)), cache_k, cache_v


class LlamaMLP(Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        e, inner, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_proj = Linear(e, inner, bias=bias)
        self.up_proj = Linear(e, inner, bias=bias)
        self.down_proj = Linear(inner, e, bias=bias)
        self.act = activation(config.hidden_act)

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(CachedBlock):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.attn = LlamaAttention(config)
        self.mlp_norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = LlamaMLP(config)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Llama(CausalLM):
    """Llama with its language-model head: `forward(ids)` gives logits (batch, length, vocab)."""

    config_class = LlamaConfig
    name_map = NameMap(
        """
        embed.weight                -> model.embed_tokens.weight
        layers.{n}.attn_norm.weight -> model.layers.{n}.input_layernorm.weight
        layers.{n}.attn.{proj}.{w}  -> model.layers.{n}.self_attn.{proj}.{w}
        layers.{n}.mlp_norm.weight  -> model.layers.{n}.post_attention_layernorm.weight
        layers.{n}.mlp.{proj}.{w}   -> model.layers.{n}.mlp.{proj}.{w}
        final_norm.weight           -> model.norm.weight
        lm_head.weight              -> lm_head.weight
        """,
        backbone_prefix="model.",
        ignored=r"rotary_emb\.inv_freq$",  # a buffer older checkpoints stored
    )

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.embed = Embedding(config.vocab_size, config.hidden_size)
        self.layers = ModuleList([LlamaBlock(config) for _ in range(config.num_hidden_layers)])
        self.final_norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed.weight
        self.register_buffer("inv_freq", T.tensor(inverse_frequencies(config.head_dim, config.rotary_base)),
                             persistent=False)
        init_transformer_weights(self, config.initializer_range)

    @property
    def max_positions(self) -> int:
        return self.config.max_position_embeddings

    def _rotary(self, positions):
        """cos and sin of shape (length, head_dim) for int64 positions (length,)."""
        angles = T.reshape(T.cast(positions, D.float32), (-1, 1)) * T.reshape(self.inv_freq, (1, -1))
        angles = T.cat([angles, angles], -1)
        return T.cos(angles), T.sin(angles)

    def forward(self, ids):
        self.check_ids(ids)
        cos, sin = self._rotary(T.iota((ids.shape[1],), 0, device=ids.device))
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.final_norm(x))

    def cache_layout(self) -> tuple:
        return self.config.num_hidden_layers, self.config.num_key_value_heads, self.config.head_dim

    def forward_cached(self, ids, start, cache: list):
        self.check_ids(ids)
        cos, sin = self._rotary(T.iota((ids.shape[1],), 0, device=ids.device) + start)
        x, cache = run_cached(self.layers, self.embed(ids), cache, cos, sin, start)
        return self.final_norm(x), cache
