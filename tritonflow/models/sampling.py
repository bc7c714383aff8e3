"""tritonflow.models: choosing the next token — greedy, or sampling with temperature, top-k, top-p.

Framework stage (generation). Everything is written with existing tensor ops so it runs inside
the compiled decoding step (no logits cross to the host). The filters follow transformers'
order and tie rules: temperature, then top-k (keep every token whose logit is at least the k-th
largest: ties at the boundary are all kept), then top-p (keep the smallest set of most likely
tokens whose probability reaches p: a token stays when the mass of the tokens strictly more
likely than it is below p; the most likely token always stays).

tritonflow has no sort or top-k primitive yet (issue 12 adds them), so both thresholds are found
by bisection instead of sorting: for each row, the largest value t among the logits such that
the tokens >= t hold enough (count for top-k, probability for top-p), searched for over
`THRESHOLD_STEPS` halvings of [row min, row max] and then snapped to the smallest logit >= the
result. 64 float32 halvings narrow any finite interval to adjacent floats for values above
~1e-11 times its width, so the threshold is exact except between logits closer than that. When
sort/topk exist, `_threshold` becomes one sort and a cumulative sum.

Sampling draws with the Gumbel-max trick, argmax(logits - log(-log(u))), u uniform from
tritonflow's Philox stream: exactly a draw from softmax(logits), without a cumulative sum, and
reproducible under `tritonflow.manual_seed`.
"""
from __future__ import annotations

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.errors import ShapeError

THRESHOLD_STEPS = 64
_SMALLEST_UNIFORM = 1e-12  # keeps log(u) finite when the uniform draw is exactly 0


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """ShapeError for settings with no meaning (raised before anything is compiled)."""
    if not temperature >= 0.0:
        raise ShapeError(f"generate: temperature must be >= 0, got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ShapeError(f"generate: top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ShapeError(f"generate: top_p must be in (0, 1] or None, got {top_p!r}")


def _threshold(values, weights, target):
    """Per row of `values` (batch, vocab): the largest value t with sum(weights[values >= t]) >= target
    (the row minimum when even all of them fall short). Shape (batch, 1)."""
    finite = T.isfinite(values)
    hi = T.amax(values, -1, keepdim=True)
    lo = T.amin(T.where(finite, values, hi), -1, keepdim=True)
    for _ in range(THRESHOLD_STEPS):
        mid = lo + (hi - lo) * 0.5
        enough = T.sum(T.where(values >= mid, weights, 0.0), -1, keepdim=True) >= target
        lo = T.where(enough, mid, lo)
        hi = T.where(enough, hi, mid)
    return T.amin(T.where(values >= lo, values, float("inf")), -1, keepdim=True)


def filter_logits(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None):
    """`logits` (batch, vocab) scaled by 1/temperature, with the tokens top-k and top-p remove set
    to -inf. temperature must be > 0 here (0 means greedy: see `next_token`)."""
    logits = T.cast(logits, D.float32) / temperature
    vocab = logits.shape[-1]
    if top_k is not None and top_k < vocab:
        ones = T.ones_like(logits)
        logits = T.where(logits >= _threshold(logits, ones, float(top_k)), logits, float("-inf"))
    if top_p is not None and top_p < 1.0:
        probs = T.softmax(logits, -1)
        logits = T.where(logits >= _threshold(logits, probs, float(top_p)), logits, float("-inf"))
    return logits


def next_token(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               do_sample: bool = True):
    """The chosen token per row of `logits` (batch, vocab), int64 (batch,)."""
    if not do_sample or temperature == 0.0:
        return T.argmax(logits, -1)
    filtered = filter_logits(logits, temperature, top_k, top_p)
    u = T.clamp(T.rand(tuple(filtered.shape), device=filtered.device), _SMALLEST_UNIFORM)
    gumbel = -T.log(-T.log(u))
    return T.argmax(filtered + gumbel, -1)
