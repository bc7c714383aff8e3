"""DistributedDataParallel on two gloo processes equals single-process training on the combined batch.

The references are computed here, in one process without any distributed code: the same model
(rank 0's initial values; the ranks start from different ones and DDP's broadcast must fix that),
the same optimizer, the whole batch of each step. Relative agreement 1e-6 is the issue's bar;
in float64 the runs agree to rounding.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from workers import (ACCUMULATE, ROWS, STEPS, Scaled, TwoHeads, batch, loss_of, mlp,  # noqa: E402
                     parameters_of, train_step, two_heads_loss)

import tritonflow as tf  # noqa: E402

WORLD = 2
RTOL = 1e-6


def reference(steps: int) -> dict:
    model = mlp(0)
    opt = tf.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        train_step(model, opt, *batch(step))
    return parameters_of(model)


def assert_matches(suite, prefix: str, want: dict) -> None:
    for rank, res in enumerate(suite):
        for name, value in want.items():
            got = res.arrays[f"{prefix}/{name}"]
            np.testing.assert_allclose(got, value, rtol=RTOL, atol=RTOL * np.abs(value).max(),
                                       err_msg=f"{prefix} {name} on rank {rank}")


@pytest.mark.parametrize("prefix", ["eager", "eager_one_bucket", "compile_ddp", "ddp_of_compiled", "jit_step",
                                    "jit_closed_step"])
def test_ten_steps_equal_single_process_training_on_the_combined_batch(suite, prefix):
    assert_matches(suite, prefix, reference(STEPS))


def test_jitted_step_on_the_triton_backend(suite):
    assert_matches(suite, "jit_step_triton", reference(1))


def test_buckets_start_during_the_backward(suite):
    for res in suite:
        info = res.info
        assert info["eager_buckets"] == 3 and info["eager_launched"] == 3 * STEPS
        # At the first bucket's launch the backward had gradients left to make: it overlaps.
        assert info["eager_missing_at_launch"][0] > 0, info["eager_missing_at_launch"]
        assert info["eager_missing_at_launch"] == sorted(info["eager_missing_at_launch"], reverse=True)
        # tritonflow.compile(ddp): the compiled backward is cut at the 3 buckets and feeds them in turn.
        assert info["compile_backward_stages"] == 3
        assert info["compile_missing_at_launch"][0] > 0
        # The jitted step compiled once, with the three bucket all-reduces in its graph.
        assert info["jit_step_compiles"] == 1 and info["jit_step_all_reduces"] == 3
        # Likewise the step that reads the DDP model and optimizer from its closure.
        assert info["jit_closed_compiles"] == 1 and info["jit_closed_all_reduces"] == 3


def test_no_sync_accumulation_equals_the_large_batch(suite):
    model = mlp(0)
    opt = tf.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(3):
        opt.zero_grad()
        loss_of(model, *batch(100 + step, ROWS * ACCUMULATE)).backward()
        opt.step()
    assert_matches(suite, "no_sync", parameters_of(model))
    for res in suite:
        assert res.info["launched_inside_no_sync"] == 0


def test_unused_parameters_are_found(suite):
    """Each rank trains its own head: the other head's gradient counts as zero there; a head no
    rank uses keeps no gradient and does not move."""
    model = TwoHeads(0)
    start = parameters_of(model)
    opt = tf.optim.Adam(model.parameters(), lr=1e-2)
    half = ROWS // WORLD
    for step in range(3):
        x, y = batch(step)
        opt.zero_grad()
        loss = (two_heads_loss(model, x[:half], y[:half], 0) + two_heads_loss(model, x[half:], y[half:], 1)) / 2
        loss.backward()
        opt.step()
    assert_matches(suite, "unused", parameters_of(model))
    for res in suite:
        assert res.info["never_grad_is_none"]
        np.testing.assert_array_equal(res.arrays["unused/never.weight"], start["never.weight"])


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_buffers_are_rank_zeros_at_every_forward(suite, mode):
    linear = Scaled().linear
    for res in suite:
        for step in range(2):
            scale = np.full(2, 10.0 * step + 2)  # rank 0's value of that step
            np.testing.assert_array_equal(res.arrays[f"buffers/{mode}/{step}/scale"], scale)
            want = (np.ones((1, 3)) @ linear.weight.detach().numpy().T + linear.bias.detach().numpy()) * scale
            np.testing.assert_allclose(res.arrays[f"buffers/{mode}/{step}/y"], want, rtol=1e-6)
