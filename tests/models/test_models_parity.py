"""GPT-2, Llama and BERT loaded from transformers' own checkpoints compute transformers' numbers.

Reference: the transformers model that wrote the checkpoint, run by torch on CPU in float32.
Bound: float32 logits (hidden states for BERT) within 1e-5, eager, jitted on the numpy backend,
and for GPT-2 also on the triton backend (Triton's interpreter on CPU).
"""
from __future__ import annotations

import numpy as np
import pytest

import tritonflow as tf
from tritonflow import models

ATOL = 1e-5


def reference_logits(hf_model, ids: np.ndarray, **kwargs) -> np.ndarray:
    import torch
    with torch.no_grad():
        out = hf_model(torch.tensor(ids), **{k: torch.tensor(v) for k, v in kwargs.items()})
    return (out.logits if hasattr(out, "logits") else out.last_hidden_state).numpy()


def run(model, mode: str, ids: np.ndarray, **kwargs) -> np.ndarray:
    args = {k: tf.tensor(v) for k, v in kwargs.items()}
    with tf.no_grad():
        if mode == "eager":
            out = model(tf.tensor(ids), **args)
        else:
            out = tf.compile(model, backend=mode)(tf.tensor(ids), **args)
    return (out.last_hidden_state if isinstance(out, models.BertOutput) else out).numpy()


def assert_matches(got, want):
    assert got.shape == want.shape
    err = float(np.abs(got.astype(np.float64) - want).max())
    assert err <= ATOL, f"max |tritonflow - transformers| = {err:.3g} > {ATOL}"


@pytest.mark.parametrize("mode", ["eager", "numpy"])
@pytest.mark.parametrize("kind, overrides", [
    ("gpt2", {}),
    ("gpt2", {"activation_function": "gelu", "scale_attn_by_inverse_layer_idx": True, "n_inner": 40}),
    ("llama", {}),                                                          # grouped-query: 4 heads, 2 kv heads
    ("llama", {"num_key_value_heads": 4, "tie_word_embeddings": True, "rope_theta": 500.0}),
    ("llama", {"num_key_value_heads": 1, "attention_bias": True, "mlp_bias": True, "head_dim": 16}),
], ids=["gpt2", "gpt2-variants", "llama-gqa", "llama-mha-tied", "llama-mqa-bias"])
def test_causal_lm_logits_match_transformers(saved, token_ids, kind, overrides, mode):
    hf_model, path = saved(kind, **overrides)
    model = models.from_pretrained(path)
    assert type(model) is {"gpt2": models.GPT2, "llama": models.Llama}[kind]
    ids = token_ids(11)
    assert_matches(run(model, mode, ids), reference_logits(hf_model, ids))


def test_logits_on_the_triton_backend(saved, token_ids):
    """GPT-2 here; Llama runs on the triton backend in the generation tests (greedy decoding)."""
    hf_model, path = saved("gpt2")
    model = models.from_pretrained(path)
    ids = token_ids(5)
    assert_matches(run(model, "triton", ids), reference_logits(hf_model, ids))


@pytest.mark.parametrize("mode", ["eager", "numpy"])
def test_bert_hidden_states_match_transformers_with_padding_and_token_types(saved, token_ids, mode):
    hf_model, path = saved("bert")
    model = models.Bert.from_pretrained(path)
    ids = token_ids(9, batch=3)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    types = np.zeros_like(ids)
    types[:, 4:] = 1
    want = reference_logits(hf_model, ids, attention_mask=mask, token_type_ids=types)
    got = run(model, mode, ids, attention_mask=mask, token_type_ids=types)
    real = mask.astype(bool)  # padded positions' outputs are never used; transformers computes them too
    assert_matches(got[real], want[real])
    assert_matches(got, want)


def test_bert_pooler_matches_transformers(saved, token_ids):
    import torch
    hf_model, path = saved("bert")
    ids = token_ids(6)
    with torch.no_grad():
        want = hf_model(torch.tensor(ids)).pooler_output.numpy()
    with tf.no_grad():
        got = models.Bert.from_pretrained(path)(tf.tensor(ids)).pooler_output.numpy()
    assert_matches(got, want)


def test_sharded_checkpoint_loads_the_same_weights(saved, token_ids):
    import json
    import os
    hf_model, path = saved("llama", shard="20KB")
    with open(os.path.join(path, "model.safetensors.index.json")) as f:
        assert len(set(json.load(f)["weight_map"].values())) > 1
    assert not os.path.exists(os.path.join(path, "model.safetensors"))
    ids = token_ids(7)
    assert_matches(run(models.Llama.from_pretrained(path), "eager", ids), reference_logits(hf_model, ids))


def test_base_model_checkpoint_without_prefix_loads(transformers_lib, saved, token_ids, tmp_path):
    """A GPT2Model / LlamaModel file names tensors without `transformer.` / `model.`; the lm_head of
    a tied GPT-2 is the token embedding, so the base model's file is all the LM needs."""
    import torch
    hf_model, _ = saved("gpt2")
    hf_model.transformer.save_pretrained(str(tmp_path))
    ids = token_ids(6)
    model = models.GPT2.from_pretrained(tmp_path)
    assert_matches(run(model, "eager", ids), reference_logits(hf_model, ids))
    with torch.no_grad():
        assert model.lm_head.weight is model.wte.weight


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_checkpoint_loads_in_its_dtype_with_auto(build_hf, token_ids, tmp_path, dtype):
    import torch
    hf_model = build_hf("llama").to(getattr(torch, dtype))
    hf_model.save_pretrained(str(tmp_path))
    model = models.Llama.from_pretrained(tmp_path, dtype="auto")
    assert all(p.dtype.name == dtype for p in model.parameters())
    want = {n: p.detach().float().numpy() for n, p in hf_model.named_parameters()}
    got = models.Llama.from_pretrained(tmp_path)  # dtype=None: float32, values exactly the saved ones
    assert all(p.dtype.name == "float32" for p in got.parameters())
    np.testing.assert_array_equal(got.layers[1].mlp.down_proj.weight.detach().numpy(),
                                  want["model.layers.1.mlp.down_proj.weight"])
    ids = token_ids(5)
    logits = run(model, "eager", ids).astype(np.float32)
    with torch.no_grad():
        ref = hf_model(torch.tensor(ids)).logits.float().numpy()
    # Both compute in half precision with different rounding points: agreement to a few half ulps.
    assert np.abs(logits - ref).max() < 0.05 * max(1.0, np.abs(ref).max())
