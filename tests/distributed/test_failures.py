"""Failures across processes end in clear errors, in bounded time, never in a hang of the suite."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import describe, run_ranks  # noqa: E402

WORLD = 2


def test_mismatch_unused_gradients_a_rank_that_stops_answering_and_one_that_raises(tmp_path):
    results = run_ranks("failures", tmp_path, WORLD, timeout=120)
    rank0, rank1 = results
    for rank, res in enumerate(results):
        # Different models: every rank is told, naming the parameter, the ranks and the shapes.
        assert "the model on rank 1 differs from rank 0's: parameter '0.weight' is float32(6, 4) on rank 1, " \
               "but rank 0 has parameter '0.weight' float32(5, 4)" in res.info["mismatch"], describe(results)
        assert "at workers.py" in res.info["mismatch"]  # the user's line
        assert "parameters received no gradient in this backward: ['head_b.weight', 'head_b.bias', " \
               "'never.weight', 'never.bias']; every rank must produce a gradient for every parameter, or pass " \
               "find_unused_parameters=True" in res.info["unused"]
    # Rank 1 never joined the step on the 3 s group: rank 0 gave up after its timeout, saying why.
    assert rank0.info["stuck_error"].startswith(
        "all_reduce on rank 0 of 2: the timeout of 3 s passed waiting for the other ranks: one of them failed, "
        "hangs, or did not reach this all_reduce"), rank0.info["stuck_error"]
    assert 2.5 < rank0.info["stuck_seconds"] < 15
    assert rank1.returncode == 1 and rank1.info["error"] == "rank 1 fails on purpose"
    # The survivor fails at its next collective, with a DistributedError saying why, well within the timeout.
    assert rank0.returncode == 1, describe(results)
    assert rank0.info["error_type"] == "DistributedError"
    assert rank0.info["error"].startswith("all_reduce on rank 0 of 2: a peer process closed its connection: it "
                                          "probably failed or exited"), rank0.info["error"]
    assert rank0.info["seconds_to_fail"] < 20


def test_the_harness_kills_ranks_that_hang(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text("import time\ntime.sleep(600)\n")
    start = time.monotonic()
    results = run_ranks("hang", tmp_path, WORLD, timeout=1, script=script)
    assert [r.returncode for r in results] == [None, None]  # killed at the timeout, not left behind
    assert time.monotonic() - start < 30
