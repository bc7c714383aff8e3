"""tritonflow.models: choosing the next token — greedy, or sampling with temperature, top-k, top-p.

Framework stage (generation). Everything is written with tensor ops so it runs inside the compiled
decoding step (no logits cross to the host). The filters are transformers' warpers, step for step:
temperature, then top-k (keep every token whose logit is at least the k-th largest: ties at the
boundary are all kept), then top-p (sort the logits ascending, and remove the tokens whose
cumulative probability, up to and including their own, is at most 1 - p; the most likely token
always stays). The draw is `multinomial` from the filtered softmax, on tritonflow's Philox stream,
so it repeats under `tritonflow.manual_seed`.
"""
from __future__ import annotations

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.errors import ShapeError


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """ShapeError for settings with no meaning (raised before anything is compiled)."""
    if not temperature >= 0.0:
        raise ShapeError(f"generate: temperature must be >= 0, got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ShapeError(f"generate: top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ShapeError(f"generate: top_p must be in (0, 1] or None, got {top_p!r}")


def _top_p_removed(logits, top_p: float):
    """Per token, whether top-p removes it (transformers' TopPLogitsWarper)."""
    ascending, order = T.sort(logits, -1)
    cumulative = T.cumsum(T.softmax(ascending, -1), -1)
    removed = cumulative <= 1.0 - top_p
    vocab = logits.shape[-1]
    keep_last = T.iota(tuple(logits.shape), logits.ndim - 1, device=logits.device) == vocab - 1
    removed = T.logical_and(removed, T.logical_not(keep_last))  # the most likely token stays
    return T.scatter(removed, -1, order, removed)


def filter_logits(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None):
    """`logits` (batch, vocab) scaled by 1/temperature, with the tokens top-k and top-p remove set
    to -inf. temperature must be > 0 here (0 means greedy: see `next_token`)."""
    logits = T.cast(logits, D.float32) / temperature
    vocab = logits.shape[-1]
    if top_k is not None and top_k < vocab:
        kth = T.narrow(T.topk(logits, top_k, -1).values, -1, top_k - 1, 1)
        logits = T.where(logits >= kth, logits, float("-inf"))
    if top_p is not None and top_p < 1.0:
        logits = T.where(_top_p_removed(logits, top_p), float("-inf"), logits)
    return logits


def next_token(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               do_sample: bool = True):
    """The chosen token per row of `logits` (batch, vocab), int64 (batch,)."""
    if not do_sample or temperature == 0.0:
        return T.argmax(logits, -1)
    probs = T.softmax(filter_logits(logits, temperature, top_k, top_p), -1)
    # One draw per row: with or without replacement it is the same distribution; with replacement
    # it is one cumulative sum rather than a sort of the vocabulary.
    return T.reshape(T.multinomial(probs, 1, replacement=True), (probs.shape[0],))
