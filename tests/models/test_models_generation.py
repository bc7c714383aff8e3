"""generate(): greedy decoding equals transformers' greedy output, decoding compiles once, and the
sampling filters and draws follow transformers' warpers and the softmax distribution.

References: transformers' generate (greedy), its TopK/TopP/Temperature logits warpers, and the
exact softmax probabilities (for sampled frequencies).
"""
from __future__ import annotations

import numpy as np
import pytest

import tritonflow as tf
from tritonflow import models
from tritonflow.models import filter_logits, next_token


def hf_greedy(hf_model, ids: np.ndarray, new: int, eos: int | None = None, pad: int = 0) -> np.ndarray:
    import torch
    with torch.no_grad():
        out = hf_model.generate(torch.tensor(ids), attention_mask=torch.ones(ids.shape, dtype=torch.long),
                                max_new_tokens=new, do_sample=False, eos_token_id=eos, pad_token_id=pad)
    return out.numpy()


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_greedy_equals_transformers_and_decoding_compiles_once(saved, token_ids, kind):
    hf_model, path = saved(kind)
    model = models.from_pretrained(path)
    ids = token_ids(3)
    got = model.generate(tf.tensor(ids), 20, do_sample=False).numpy()
    np.testing.assert_array_equal(got, hf_greedy(hf_model, ids, 20))
    decoder = model.decoder()
    # 20 tokens: the first from the prefill, then 19 decoding steps through one compiled graph.
    assert decoder.step.cache_info() == (18, 1, 1)
    assert decoder.prefill.cache_info() == (0, 1, 1)

    # Another prompt length in the same padded bucket (16) and capacity (32): nothing recompiles.
    ids = token_ids(9, seed=1)
    np.testing.assert_array_equal(model.generate(tf.tensor(ids), 12, temperature=0.0).numpy(),
                                  hf_greedy(hf_model, ids, 12))
    assert decoder.step.cache_info().misses == 1 and decoder.prefill.cache_info().misses == 1

    # A prompt longer than the first bucket: one new prefill length and a larger cache.
    ids = token_ids(17, seed=2)
    np.testing.assert_array_equal(model.generate(tf.tensor(ids), 24, do_sample=False).numpy(),
                                  hf_greedy(hf_model, ids, 24))
    assert decoder.step.cache_info().misses == 2 and decoder.prefill.cache_info().misses == 2


def test_greedy_on_the_triton_backend(saved, token_ids):
    hf_model, path = saved("llama")
    ids = token_ids(4)
    model = models.Llama.from_pretrained(path)
    got = model.generate(tf.tensor(ids), 3, do_sample=False, backend="triton")
    np.testing.assert_array_equal(got.numpy(), hf_greedy(hf_model, ids, 3))
    assert model.decoder("triton").step.cache_info() == (1, 1, 1)


def test_eos_finishes_rows_as_transformers_does(saved, token_ids):
    hf_model, path = saved("gpt2")
    model = models.GPT2.from_pretrained(path)
    ids = token_ids(4)
    free = model.generate(tf.tensor(ids), 12, do_sample=False).numpy()
    eos = int(free[0, 4 + 3])  # row 0 emits it as its 4th new token
    want = hf_greedy(hf_model, ids, 12, eos=eos, pad=1)
    got = model.generate(tf.tensor(ids), 12, do_sample=False, eos_token_id=eos, pad_token_id=1).numpy()
    np.testing.assert_array_equal(got, want)


def test_sampled_tokens_come_from_the_filtered_set_and_repeat_under_a_seed(saved, token_ids):
    _, path = saved("llama")
    model = models.Llama.from_pretrained(path)
    ids = token_ids(5)
    tf.manual_seed(7)
    first = model.generate(tf.tensor(ids), 16, temperature=0.8, top_k=3).numpy()
    tf.manual_seed(7)
    again = model.generate(tf.tensor(ids), 16, temperature=0.8, top_k=3).numpy()
    np.testing.assert_array_equal(first, again)
    tf.manual_seed(8)
    other = model.generate(tf.tensor(ids), 16, temperature=0.8, top_k=3).numpy()
    assert (other != first).any()
    # Each sampled token is among the 3 most likely after its prefix (recomputed without a cache).
    with tf.no_grad():
        logits = model(tf.tensor(first)).numpy()
    for pos in range(5, first.shape[1]):
        step = logits[:, pos - 1]
        third = np.sort(step, -1)[:, -3]
        chosen = step[np.arange(step.shape[0]), first[:, pos]]
        assert (chosen >= third).all(), pos
    assert model.decoder().step.cache_info().misses == 1


def _warped(logits: np.ndarray, temperature: float, top_k, top_p) -> np.ndarray:
    import torch
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
    scores = torch.tensor(logits)
    scores = TemperatureLogitsWarper(temperature)(None, scores)
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p is not None:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return scores.numpy()


@pytest.mark.parametrize("jitted", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("temperature, top_k, top_p", [
    (1.0, 5, None), (0.7, 1, None), (1.3, None, 0.9), (1.0, None, 0.3), (0.9, 12, 0.8), (2.0, 40, 0.999),
])
def test_filters_match_transformers_warpers(transformers_lib, temperature, top_k, top_p, jitted):
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((6, 40)) * 3).astype(np.float32)
    if top_p is None:
        logits[0, :8] = logits[0, 8]  # a tie across the k-th place: all tied tokens stay
    logits[1, 7] = -np.inf            # a token already removed
    fn = tf.jit(filter_logits) if jitted else filter_logits
    got = fn(tf.tensor(logits), temperature, top_k, top_p).numpy()
    want = _warped(logits, temperature, top_k, top_p)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    kept = ~np.isinf(want)
    np.testing.assert_allclose(got[kept], want[kept], rtol=1e-6)


@pytest.mark.parametrize("top_k, top_p", [(None, None), (3, None), (None, 0.7)])
def test_sampled_frequencies_follow_the_filtered_softmax(top_k, top_p):
    logits = np.log(np.array([0.30, 0.25, 0.20, 0.12, 0.08, 0.05], dtype=np.float64))
    draws = 20000
    tf.manual_seed(11)
    tokens = tf.jit(next_token)(tf.tensor(np.tile(logits.astype(np.float32), (draws, 1))), 1.0, top_k, top_p).numpy()
    want = np.exp(logits)
    if top_k is not None:
        want[top_k:] = 0
    if top_p is not None:  # the most likely tokens until their mass reaches 0.7: 0.30 + 0.25 + 0.20
        want[3:] = 0
    want /= want.sum()
    freq = np.bincount(tokens, minlength=len(logits)) / draws
    sigma = np.sqrt(want * (1 - want) / draws)
    assert (freq[want == 0] == 0).all(), freq
    assert (np.abs(freq - want) <= 5 * sigma + 1e-12).all(), (freq, want)


def test_bad_generation_arguments_raise_before_compiling(saved, token_ids):
    _, path = saved("gpt2")
    model = models.GPT2.from_pretrained(path)
    ids = tf.tensor(token_ids(4))
    cases = [
        (dict(max_new_tokens=3, top_k=0), "top_k must be a positive int"),
        (dict(max_new_tokens=3, top_p=0.0), "top_p must be in (0, 1]"),
        (dict(max_new_tokens=3, temperature=-1.0), "temperature must be >= 0"),
        (dict(max_new_tokens=61), "exceed the model's 64 positions"),
        (dict(max_new_tokens=-1), "max_new_tokens must be a non-negative int"),
    ]
    for kwargs, message in cases:
        with pytest.raises(tf.ShapeError, match=message.replace("(", r"\(").replace("]", r"\]")):
            model.generate(ids, **kwargs)
    with pytest.raises(tf.DTypeError, match="token ids must be an integer tensor"):
        model.generate(tf.tensor(np.zeros((1, 3), np.float32)), 2)
    assert model.decoder().step.cache_info().misses == 0
    assert model.generate(ids, 0).shape == (2, 4)
    assert model.generate(tf.tensor(token_ids(4)[0]), 2).shape == (6,)  # one unbatched prompt
