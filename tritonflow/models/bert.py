"""tritonflow.models: BERT encoders (the layout of all-MiniLM-L6-v2 and bert-base), and mean pooling.

Framework stage (models). Computes what transformers' BertModel computes and loads its
checkpoints, with or without the `bert.` prefix task models add: `Bert.from_pretrained(dir)`.
Post-LayerNorm blocks; absolute positions; the padding mask (1 = token, 0 = padding) keeps padded
keys out of every query's attention. `mean_pool` + L2 normalisation is the sentence embedding
sentence-transformers' all-MiniLM-L6-v2 computes (its modules.json: Transformer, mean Pooling,
Normalize).
"""
from __future__ import annotations

import dataclasses
import math
from collections import namedtuple

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.models.activations import ACTIVATIONS, activation
from tritonflow.models.attention import merge_heads, split_heads
from tritonflow.models.config import ModelConfig, require
from tritonflow.models.loading import NameMap
from tritonflow.models.pretrained import PretrainedModel, init_transformer_weights
from tritonflow.nn import Dropout, Embedding, LayerNorm, Linear, ModuleList
from tritonflow.nn import functional as F
from tritonflow.nn.modules import Module

BertOutput = namedtuple("BertOutput", ["last_hidden_state", "pooler_output"])


@dataclasses.dataclass
class BertConfig(ModelConfig):
    MODEL_TYPE = "bert"
    REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    EXTRA_IGNORED = frozenset({"gradient_checkpointing"})

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    position_embedding_type: str = "absolute"
    is_decoder: bool = False
    tie_word_embeddings: bool = True  # ties a masked-LM head, which this encoder does not build

    def check(self, source: str) -> None:
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            require(getattr(self, name) > 0, source, name, getattr(self, name), "positive sizes")
        require(self.hidden_size % self.num_attention_heads == 0, source, "num_attention_heads",
                self.num_attention_heads, f"a head count that divides hidden_size ({self.hidden_size})")
        require(self.hidden_act in ACTIVATIONS, source, "hidden_act", self.hidden_act, ", ".join(ACTIVATIONS))
        require(self.position_embedding_type == "absolute", source, "position_embedding_type",
                self.position_embedding_type, "'absolute' position embeddings")
        require(not self.is_decoder, source, "is_decoder", self.is_decoder, "BERT as an encoder")


class BertEmbeddings(Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word = Embedding(config.vocab_size, config.hidden_size)
        self.position = Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, ids, token_type_ids):
        positions = T.iota((ids.shape[1],), 0, device=ids.device)
        x = self.word(ids) + self.position(positions) + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))


class BertLayer(Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        e = config.hidden_size
        self.heads = config.num_attention_heads
        self.head_dim = e // self.heads
        self.query, self.key, self.value = Linear(e, e), Linear(e, e), Linear(e, e)
        self.attn_out = Linear(e, e)
        self.attn_norm = LayerNorm(e, eps=config.layer_norm_eps)
        self.ffn_up = Linear(e, config.intermediate_size)
        self.ffn_down = Linear(config.intermediate_size, e)
        self.ffn_norm = LayerNorm(e, eps=config.layer_norm_eps)
        self.act = activation(config.hidden_act)
        self.attn_dropout_p = config.attention_probs_dropout_prob
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, x, keep):
        q, k, v = (split_heads(proj(x), self.heads, self.head_dim) for proj in (self.query, self.key, self.value))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=1.0 / math.sqrt(self.head_dim),
                                                 dropout_p=self.attn_dropout_p if self.training else 0.0)
        x = self.attn_norm(x + self.dropout(self.attn_out(merge_heads(context))))
        return self.ffn_norm(x + self.dropout(self.ffn_down(self.act(self.ffn_up(x)))))


class Bert(PretrainedModel):
    """`forward(input_ids, attention_mask=None, token_type_ids=None)` ->
    BertOutput(last_hidden_state (batch, length, hidden), pooler_output (batch, hidden) or None)."""

    config_class = BertConfig
    name_map = NameMap(
        """
        embeddings.word.weight      -> embeddings.word_embeddings.weight
        embeddings.position.weight  -> embeddings.position_embeddings.weight
        embeddings.token_type.weight -> embeddings.token_type_embeddings.weight
        embeddings.norm.{w}         -> embeddings.LayerNorm.{w}
        layers.{n}.query.{w}        -> encoder.layer.{n}.attention.self.query.{w}
        layers.{n}.key.{w}          -> encoder.layer.{n}.attention.self.key.{w}
        layers.{n}.value.{w}        -> encoder.layer.{n}.attention.self.value.{w}
        layers.{n}.attn_out.{w}     -> encoder.layer.{n}.attention.output.dense.{w}
        layers.{n}.attn_norm.{w}    -> encoder.layer.{n}.attention.output.LayerNorm.{w}
        layers.{n}.ffn_up.{w}       -> encoder.layer.{n}.intermediate.dense.{w}
        layers.{n}.ffn_down.{w}     -> encoder.layer.{n}.output.dense.{w}
        layers.{n}.ffn_norm.{w}     -> encoder.layer.{n}.output.LayerNorm.{w}
        pooler.{w}                  -> pooler.dense.{w}
        """,
        backbone_prefix="bert.",
        ignored=r"embeddings\.position_ids$",  # a buffer older checkpoints stored
    )

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.layers = ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])
        self.pooler = Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        init_transformer_weights(self, config.initializer_range)

    def _check_inputs(self, ids, attention_mask, token_type_ids) -> None:
        if not T.is_tensor(ids) or not ids.dtype.is_integer or ids.ndim != 2:
            raise DTypeError(f"Bert: input_ids must be an integer tensor (batch, length), got "
                             f"{getattr(ids, 'dtype', type(ids).__name__)} {tuple(getattr(ids, 'shape', ()))}")
        if ids.shape[1] > self.config.max_position_embeddings:
            raise ShapeError(f"Bert: {ids.shape[1]} tokens exceed the model's {self.config.max_position_embeddings} "
                             f"positions")
        for name, t in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if t is not None and tuple(t.shape) != tuple(ids.shape):
                raise ShapeError(f"Bert: {name} has shape {tuple(t.shape)}, input_ids {tuple(ids.shape)}")

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> BertOutput:
        self._check_inputs(input_ids, attention_mask, token_type_ids)
        if token_type_ids is None:
            token_type_ids = T.zeros(tuple(input_ids.shape), dtype=D.int64, device=input_ids.device)
        keep = None
        if attention_mask is not None:  # (batch, 1, 1, keys): True where a key may be attended to
            keep = T.reshape(attention_mask != 0, (input_ids.shape[0], 1, 1, input_ids.shape[1]))
        x = self.embeddings(input_ids, token_type_ids)
        for layer in self.layers:
            x = layer(x, keep)
        pooled = None
        if self.pooler is not None:
            pooled = T.tanh(self.pooler(T.narrow(x, 1, 0, 1)))
            pooled = T.reshape(pooled, (x.shape[0], x.shape[2]))
        return BertOutput(x, pooled)


def mean_pool(hidden, attention_mask, normalize: bool = True):
    """The mean of each row's token vectors over its real tokens (mask 1), L2-normalised when
    `normalize` (sentence-transformers' Pooling(mean) + Normalize)."""
    weights = T.unsqueeze(T.cast(attention_mask, hidden.dtype), -1)
    summed = T.sum(hidden * weights, 1)
    counts = T.clamp(T.sum(weights, 1), 1e-9)
    pooled = summed / counts
    if not normalize:
        return pooled
    norm = T.sqrt(T.sum(pooled * pooled, -1, keepdim=True))
    return pooled / T.clamp(norm, 1e-12)
