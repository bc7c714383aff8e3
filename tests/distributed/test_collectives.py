"""tritonflow.distributed collectives on two gloo processes, eager and inside jitted graphs (both
backends), against NumPy reductions of the inputs each rank drew (float64 where it matters)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import ml_dtypes

sys.path.insert(0, str(Path(__file__).parent))
from workers import rank_data  # noqa: E402

import tritonflow as tf  # noqa: E402
import tritonflow.distributed as dist  # noqa: E402

WORLD = 2


@pytest.fixture
def ranks(suite):
    return suite


def _all(shape, seed=0, dtype=np.float32):
    return np.stack([rank_data(r, shape, dtype, seed).astype(np.float64) for r in range(WORLD)])


def test_all_reduce_every_reduction(ranks):
    for res in ranks:
        a = res.arrays
        np.testing.assert_allclose(a["sum"], _all((5, 3)).sum(0), rtol=1e-6)
        np.testing.assert_array_equal(a["max"], _all((4,)).max(0))
        np.testing.assert_allclose(a["avg"], _all((6,), 1).mean(0), rtol=1e-6)
        np.testing.assert_allclose(a["product"], _all((6,), 1).prod(0), rtol=1e-6)
        np.testing.assert_array_equal(a["min"], _all((6,), 1).min(0))
        np.testing.assert_array_equal(a["int_sum"], np.arange(4) * sum(r + 1 for r in range(WORLD)))
        np.testing.assert_allclose(a["async_sum"], _all((8,), 7).sum(0), rtol=1e-6)
        bf16 = np.stack([rank_data(r, (7,), seed=2).astype(ml_dtypes.bfloat16).astype(np.float64)
                         for r in range(WORLD)]).sum(0)
        np.testing.assert_allclose(a["bf16_sum"], bf16, rtol=1e-2)


def test_value_semantics_and_no_copy(ranks):
    for rank, res in enumerate(ranks):
        # An alias taken before the in-place all_reduce keeps the old value (tritonflow rebinds, never writes).
        np.testing.assert_array_equal(res.arrays["alias_after"], rank_data(rank, (4,)))
        assert res.info["sum_in_place"], "an array held by one tensor alone is reduced where it lies"


def test_broadcast_gather_scatter(ranks):
    for rank, res in enumerate(ranks):
        a = res.arrays
        np.testing.assert_array_equal(a["broadcast"], rank_data(WORLD - 1, (2, 2), seed=3))
        np.testing.assert_array_equal(a["all_gather"], _all((3,), 4))
        np.testing.assert_array_equal(a["all_gather_into_tensor"], _all((2, 2), 5).reshape(2 * WORLD, 2))
        np.testing.assert_allclose(a["reduce_scatter_tensor"], _all((2 * WORLD, 3), 6).sum(0)[2 * rank:2 * rank + 2],
                                   rtol=1e-6)
        want = np.stack([rank_data(r, (3,), seed=10 + rank) for r in range(WORLD)]).astype(np.float64).sum(0)
        np.testing.assert_allclose(a["reduce_scatter"], want, rtol=1e-6)
        assert "tensor_list has 1 entries for 2 ranks" in res.info["bad_gather"]


def test_ranks_subgroups_and_the_barrier(ranks):
    for rank, res in enumerate(ranks):
        assert (res.info["rank"], res.info["world"], res.info["backend"]) == (rank, WORLD, "gloo")
        assert res.info["own_group"] == [0, 1]
        np.testing.assert_array_equal(res.arrays["own_group_sum"], rank_data(rank, (3,), seed=8))
        np.testing.assert_allclose(res.arrays["subgroup_sum"], _all((3,), 9).sum(0), rtol=1e-6)
    # The ranks that came first waited for the last one (it slept 0.3 s before the barrier).
    assert ranks[0].info["barrier_wait"] > 0.2, ranks[0].info["barrier_wait"]


@pytest.mark.parametrize("backend", ["numpy", "triton"])
def test_collectives_inside_jitted_graphs(ranks, backend):
    for res in ranks:
        a = res.arrays
        np.testing.assert_allclose(a[f"jit_{backend}_sum"], (_all((5, 3)) * 2).sum(0) + 1, rtol=1e-6)
        np.testing.assert_allclose(a[f"jit_{backend}_gather"], (_all((2, 2), 5) + 1).reshape(2 * WORLD, 2), rtol=1e-6)
        np.testing.assert_array_equal(a[f"jit_{backend}_bcast"], rank_data(0, (2, 2), seed=5))


def test_collectives_without_a_process_group_say_so():
    with pytest.raises(dist.DistributedError, match="not initialized: call tritonflow.distributed.init_process_group"):
        dist.all_reduce(tf.ones(3))


def test_init_outside_torchrun_names_the_missing_variables(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(dist.DistributedError, match=r"MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE not set: launch with "
                                                     r"`torchrun"):
        dist.init_process_group()
