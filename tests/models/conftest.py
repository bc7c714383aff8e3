"""Fixtures for tritonflow.models: tiny random transformers models saved as checkpoint directories.

transformers (a dev-only reference) builds each model with a fixed torch seed and writes it with
its own save_pretrained into a temporary directory, so every test reads a real Hugging Face
checkpoint and compares against transformers' own forward pass; nothing touches the network.
initializer_range is raised from 0.02 so logits differ clearly between tokens (greedy decoding
never rests on a near-tie).
"""
from __future__ import annotations

import numpy as np
import pytest

VOCAB = 96


@pytest.fixture(scope="session")
def transformers_lib():
    import torch
    import transformers
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()  # save_pretrained's notes about ids outside a tiny vocabulary
    return transformers


def _save(model, path, **kwargs) -> str:
    import torch
    model.eval()
    with torch.no_grad():
        model.save_pretrained(str(path), **kwargs)
    return str(path)


def build(transformers_lib, kind: str, seed: int = 0, **overrides):
    """A tiny random transformers model of `kind` ("gpt2", "llama", "bert"), eval mode."""
    import torch
    torch.manual_seed(seed)
    t = transformers_lib
    if kind == "gpt2":
        config = dict(n_layer=2, n_head=4, n_embd=32, vocab_size=VOCAB, n_positions=64, bos_token_id=0,
                      eos_token_id=0, initializer_range=0.2)
        config.update(overrides)
        return t.GPT2LMHeadModel(t.GPT2Config(**config)).eval()
    if kind == "llama":
        config = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=128, initializer_range=0.2)
        config.update(overrides)
        return t.LlamaForCausalLM(t.LlamaConfig(**config)).eval()
    if kind == "bert":
        config = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                      vocab_size=VOCAB, max_position_embeddings=64, initializer_range=0.2)
        config.update(overrides)
        return t.BertModel(t.BertConfig(**config)).eval()
    raise ValueError(kind)


@pytest.fixture(scope="session")
def build_hf(transformers_lib):
    """build_hf(kind, **overrides): `build` for a test that saves the model itself."""
    return lambda kind, **overrides: build(transformers_lib, kind, **overrides)


@pytest.fixture(scope="session")
def saved(transformers_lib, tmp_path_factory):
    """saved(kind, **overrides) -> (transformers model, checkpoint directory), built once per setting."""
    made: dict = {}

    def make(kind: str, shard: str | None = None, **overrides):
        key = (kind, shard, tuple(sorted(overrides.items(), key=lambda kv: kv[0])))
        if key not in made:
            model = build(transformers_lib, kind, **overrides)
            path = tmp_path_factory.mktemp(kind)
            kwargs = {"max_shard_size": shard} if shard else {}
            made[key] = (model, _save(model, path, **kwargs))
        return made[key]
    return make


@pytest.fixture
def token_ids():
    """Random prompts (batch 2) of a given length, fixed seed."""
    def make(length: int, batch: int = 2, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).integers(0, VOCAB, (batch, length)).astype(np.int64)
    return make
