"""Small models built from tritonflow.nn for the interop tests: an MLP, a CNN, a GPT block with
causal attention and a BERT encoder (embeddings, padding-masked attention, exact GELU)."""
from __future__ import annotations

import numpy as np

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow import nn


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.GELU(approximate="tanh"), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 5), nn.Softmax(-1))


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, stride=1), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6, 3))


class GPTBlock(nn.Module):
    """Pre-norm transformer block: causal self-attention and a GELU MLP, each with a residual."""

    def __init__(self, d: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True, causal=True)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x), need_weights=False)[0]
        return x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class BertEncoder(nn.Module):
    """Token and position embeddings, then one post-norm encoder layer with a key padding mask."""

    def __init__(self, vocab: int = 50, d: int = 32, heads: int = 4, max_len: int = 16) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        self.ln0 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln1 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)
        self.ln2 = nn.LayerNorm(d)

    def forward(self, ids, padding):
        x = self.ln0(self.tok(ids) + self.pos(tf.arange(ids.shape[1])))
        x = self.ln1(x + self.attn(x, key_padding_mask=padding, need_weights=False)[0])
        return self.ln2(x + self.proj(F.gelu(self.fc(x))))


def bert_inputs(batch: int, length: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 50, (batch, length))
    padding = np.zeros((batch, length), dtype=bool)
    padding[0, length - 2:] = True        # the first sequence ends early
    return tf.tensor(ids), tf.tensor(padding)
