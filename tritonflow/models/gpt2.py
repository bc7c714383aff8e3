"""tritonflow.models: GPT-2 (learned positions, pre-LayerNorm blocks, GELU MLP, tied lm_head).

Framework stage (models). Computes what transformers' GPT2LMHeadModel computes and loads its
checkpoints: `GPT2.from_pretrained(directory)`. transformers stores the four projection weights
of each block as Conv1D, (in_features, out_features); the name map marks them transposed so they
load into ordinary `nn.Linear` layers. Built fresh, the weights are initialised as transformers
does (normal with `initializer_range`, the residual projections scaled by 1/sqrt(2 n_layer)),
so the same class trains from scratch (examples/char_gpt.py).
"""
from __future__ import annotations

import dataclasses
import math

import tritonflow.api as T
from tritonflow.models.activations import ACTIVATIONS, activation
from tritonflow.models.attention import cached_attention, causal_attention, merge_heads, split_heads
from tritonflow.models.config import ModelConfig, require
from tritonflow.models.generation import CachedBlock, CausalLM, run_cached
from tritonflow.models.loading import NameMap
from tritonflow.models.pretrained import init_transformer_weights
from tritonflow.nn import Dropout, Embedding, LayerNorm, Linear, ModuleList
from tritonflow.nn.modules import Module


@dataclasses.dataclass
class GPT2Config(ModelConfig):
    MODEL_TYPE = "gpt2"
    REQUIRED = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
    EXTRA_IGNORED = frozenset({"summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
                               "summary_first_dropout", "n_ctx", "reorder_and_upcast_attn"})

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    activation_function: str = "gelu_new"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    tie_word_embeddings: bool = True

    def check(self, source: str) -> None:
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            require(getattr(self, name) > 0, source, name, getattr(self, name), "positive sizes")
        require(self.n_embd % self.n_head == 0, source, "n_head", self.n_head,
                f"a head count that divides n_embd ({self.n_embd})")
        require(self.activation_function in ACTIVATIONS, source, "activation_function", self.activation_function,
                ", ".join(ACTIVATIONS))


class GPT2Attention(Module):
    def __init__(self, config: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        self.heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.qkv = Linear(config.n_embd, 3 * config.n_embd)
        self.proj = Linear(config.n_embd, config.n_embd)
        self.dropout_p = config.attn_pdrop
        scale = 1.0 / math.sqrt(self.head_dim) if config.scale_attn_weights else 1.0
        self.scale = scale / (layer_idx + 1) if config.scale_attn_by_inverse_layer_idx else scale

    def _project(self, x):
        q, k, v = T.split(self.qkv(x), x.shape[-1], -1)
        return tuple(split_heads(t, self.heads, self.head_dim) for t in (q, k, v))

    def forward(self, x):
        q, k, v = self._project(x)
        out = causal_attention(q, k, v, self.scale, self.dropout_p if self.training else 0.0)
        return self.proj(merge_heads(out))

    def forward_cached(self, x, start, cache_k, cache_v):
        q, k, v = self._project(x)
        out, cache_k, cache_v = cached_attention(q, k, v, cache_k, cache_v, start, self.scale)
        return self.proj(merge_heads(out)), cache_k, cache_v


class GPT2MLP(Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        inner = config.n_inner or 4 * config.n_embd
        self.fc = Linear(config.n_embd, inner)
        self.proj = Linear(inner, config.n_embd)
        self.act = activation(config.activation_function)

    def forward(self, x):
        return self.proj(self.act(self.fc(x)))


class GPT2Block(CachedBlock):
    def __init__(self, config: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        self.attn_norm = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config, layer_idx)
        self.mlp_norm = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(config)
        self.dropout = Dropout(config.resid_pdrop)

    def forward(self, x):
        x = x + self.dropout(self.attn(self.attn_norm(x)))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class GPT2(CausalLM):
    """GPT-2 with its language-model head: `forward(ids)` gives logits (batch, length, vocab)."""

    config_class = GPT2Config
    name_map = NameMap(
        """
        wte.weight                  -> transformer.wte.weight
        wpe.weight                  -> transformer.wpe.weight
        blocks.{n}.attn_norm.{w}    -> transformer.h.{n}.ln_1.{w}
        blocks.{n}.attn.qkv.{w}     -> transformer.h.{n}.attn.c_attn.{w}
        blocks.{n}.attn.proj.{w}    -> transformer.h.{n}.attn.c_proj.{w}
        blocks.{n}.mlp_norm.{w}     -> transformer.h.{n}.ln_2.{w}
        blocks.{n}.mlp.fc.{w}       -> transformer.h.{n}.mlp.c_fc.{w}
        blocks.{n}.mlp.proj.{w}     -> transformer.h.{n}.mlp.c_proj.{w}
        final_norm.{w}              -> transformer.ln_f.{w}
        lm_head.weight              -> lm_head.weight
        """,
        backbone_prefix="transformer.",
        transposed=r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc|proj))\.weight",
        ignored=r"\.attn\.(masked_)?bias$",  # the causal-mask buffers older checkpoints stored
    )

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.wte = Embedding(config.vocab_size, config.n_embd)
        self.wpe = Embedding(config.n_positions, config.n_embd)
        self.dropout = Dropout(config.embd_pdrop)
        self.blocks = ModuleList([GPT2Block(config, i) for i in range(config.n_layer)])
        self.final_norm = LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.wte.weight
        std = config.initializer_range
        init_transformer_weights(self, std, scaled=("attn.proj.weight", "mlp.proj.weight"),
                                 scaled_std=std / math.sqrt(2 * config.n_layer))

    @property
    def max_positions(self) -> int:
        return self.config.n_positions

    def _embed(self, ids, positions):
        self.check_ids(ids)
        return self.dropout(self.wte(ids) + self.wpe(positions))

    def forward(self, ids):
        positions = T.iota((ids.shape[1],), 0, device=ids.device)
        x = self._embed(ids, positions)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.final_norm(x))

    def cache_layout(self) -> tuple:
        head_dim = self.config.n_embd // self.config.n_head
        return self.config.n_layer, self.config.n_head, head_dim

    def forward_cached(self, ids, start, cache: list):
        positions = T.iota((ids.shape[1],), 0, device=ids.device) + start
        x, cache = run_cached(self.blocks, self._embed(ids, positions), cache, start)
        return self.final_norm(x), cache
