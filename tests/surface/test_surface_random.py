"""multinomial (with and without replacement), bernoulli and randperm on the Philox stream:
frequencies against the exact probabilities (draws without replacement against the successive-draw
probabilities computed by enumeration), reproducibility under a seed, the same draws eagerly and
jitted on both backends, and the errors torch raises for invalid distributions."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import tritonflow as tf

WEIGHTS = np.array([0.5, 0.0, 2.0, 1.0, 1.5], np.float32)  # unnormalised, one category impossible


def _within(freq: np.ndarray, want: np.ndarray, draws: int) -> None:
    sigma = np.sqrt(want * (1 - want) / draws)
    assert (freq[want == 0] == 0).all(), (freq, want)
    assert (np.abs(freq - want) <= 5 * sigma + 1e-12).all(), (freq, want)


def test_with_replacement_follows_the_weights():
    tf.manual_seed(3)
    draws = 20000
    rows = np.tile(WEIGHTS, (4, 1))
    got = tf.multinomial(tf.tensor(rows), draws // 4, replacement=True).numpy()
    assert got.shape == (4, draws // 4) and got.dtype == np.int64
    _within(np.bincount(got.reshape(-1), minlength=5) / draws, WEIGHTS / WEIGHTS.sum(), draws)


def test_without_replacement_follows_successive_draws():
    """P(first = a, second = b) = w_a / W * w_b / (W - w_a), enumerated exactly."""
    tf.manual_seed(4)
    draws = 20000
    got = tf.multinomial(tf.tensor(np.tile(WEIGHTS, (draws, 1))), 2).numpy()
    assert (got[:, 0] != got[:, 1]).all()
    total = WEIGHTS.sum()
    pairs = list(itertools.permutations(range(5), 2))
    want = np.array([WEIGHTS[a] / total * WEIGHTS[b] / (total - WEIGHTS[a]) for a, b in pairs])
    counts = {pair: 0 for pair in pairs}
    for a, b in got:
        counts[(int(a), int(b))] += 1
    _within(np.array([counts[p] for p in pairs]) / draws, want, draws)
    # Every category with a nonzero weight, each once: a permutation of them.
    everything = tf.multinomial(tf.tensor(WEIGHTS), 4).numpy()
    assert sorted(everything.tolist()) == [0, 2, 3, 4]


@pytest.mark.parametrize("replacement", [False, True])
def test_same_draws_eagerly_and_jitted_on_both_backends(replacement):
    probs = tf.tensor(np.random.default_rng(0).uniform(0.1, 1.0, (3, 7)).astype(np.float32))
    results = []
    for mode in ("eager", "numpy", "triton"):
        tf.manual_seed(21)
        draw = (lambda p: tf.multinomial(p, 4, replacement=replacement))
        results.append((draw(probs) if mode == "eager" else tf.jit(draw, backend=mode)(probs)).numpy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    tf.manual_seed(21)
    again = tf.multinomial(probs, 4, replacement=replacement).numpy()
    np.testing.assert_array_equal(again, results[0])
    assert (tf.multinomial(probs, 4, replacement=replacement).numpy() != again).any()  # the stream moved on


def test_invalid_distributions_raise():
    with pytest.raises(tf.InvalidValueError, match="inf, NaN or a value below 0"):
        tf.multinomial(tf.tensor([0.5, -0.1]), 1)
    with pytest.raises(tf.InvalidValueError, match="inf, NaN or a value below 0"):
        tf.multinomial(tf.tensor([0.5, float("nan")]), 1, True)
    with pytest.raises(tf.InvalidValueError, match="sums to 0"):
        tf.multinomial(tf.tensor([[0.0, 0.0], [1.0, 1.0]]), 1, True)
    with pytest.raises(tf.InvalidValueError, match="fewer than 2 categories of nonzero probability"):
        tf.multinomial(tf.tensor([0.0, 1.0, 0.0]), 2)
    with pytest.raises(tf.ShapeError, match="cannot draw 4 samples without replacement from 3 categories"):
        tf.multinomial(tf.ones(3), 4)
    with pytest.raises(tf.ShapeError, match="must be 1-d or 2-d"):
        tf.multinomial(tf.ones((2, 2, 2)), 1)
    with pytest.raises(tf.DTypeError, match="must be a floating point tensor"):
        tf.multinomial(tf.tensor([1, 2]), 1)


def test_bernoulli_and_randperm():
    tf.manual_seed(5)
    p = tf.tensor(np.linspace(0.0, 1.0, 5, dtype=np.float32))
    draws = np.stack([tf.bernoulli(p).numpy() for _ in range(2000)])
    _within(draws.mean(0), np.linspace(0.0, 1.0, 5), 2000)
    tf.manual_seed(6)
    by_method = p.bernoulli().numpy()  # torch's Tensor.bernoulli(): the tensor holds the probabilities
    tf.manual_seed(6)
    np.testing.assert_array_equal(by_method, tf.bernoulli(p).numpy())
    assert by_method[0] == 0.0 and by_method[-1] == 1.0
    perm = tf.randperm(50).numpy()
    assert sorted(perm.tolist()) == list(range(50)) and perm.tolist() != list(range(50))
    tf.manual_seed(5)
    first = tf.jit(lambda: tf.randperm(9), backend="triton")().numpy()
    tf.manual_seed(5)
    np.testing.assert_array_equal(first, tf.randperm(9).numpy())
