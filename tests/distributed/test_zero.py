"""ZeroRedundancyOptimizer (ZeRO stage 1) on two gloo processes: equals plain DDP + AdamW, keeps a
shard of the state per rank, and its consolidated state dict is the unsharded optimizer's."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from workers import mlp  # noqa: E402

WORLD = 2


def _names():
    return [name for name, _ in mlp(0).named_parameters()]


def test_zero1_equals_plain_ddp(suite):
    for res in suite:
        for name in _names():
            plain = res.arrays[f"plain/{name}"]
            np.testing.assert_allclose(res.arrays[f"zero/{name}"], plain, rtol=1e-6, atol=1e-6 * np.abs(plain).max(),
                                       err_msg=name)
        assert res.info["zero_lr"] == 1e-2 * 0.5 ** 2  # StepLR(4, 0.5) over 10 steps reached the shard


def test_each_rank_keeps_its_share_of_the_state(suite):
    sizes = sorted(p.numel() for p in mlp(0).parameters())
    plain = suite[0].info["plain_state_bytes"]
    # AdamW keeps two float64 moments per element and a float64 step per parameter.
    assert plain == 2 * 8 * sum(sizes) + 8 * len(sizes)
    shards = [res.info["zero_state_bytes"] for res in suite]
    assert sum(shards) == plain
    owned = [res.info["owned_elements"] for res in suite]
    assert sum(owned) == sum(sizes)
    # Largest first to the least loaded rank: no rank holds more than its half plus one tensor.
    assert max(owned) <= sum(sizes) / WORLD + max(sizes)
    assert max(shards) < plain * 0.6


def test_consolidated_state_dict_is_the_unsharded_optimizers(suite):
    rank0 = suite[0]
    keys, want = rank0.info["state_keys"]
    assert keys == want == list(range(len(_names())))
    compared = 0
    for key, value in rank0.arrays.items():
        if key.startswith("consolidated/"):
            np.testing.assert_array_equal(value, rank0.arrays[key.replace("consolidated/", "plain_state/")], key)
            compared += 1
    assert compared == 3 * len(_names())


def test_loading_the_unsharded_state_resumes_identically(suite):
    for res in suite:
        for name in _names():
            np.testing.assert_allclose(res.arrays[f"after_load_resumed/{name}"], res.arrays[f"after_load_plain/{name}"],
                                       rtol=1e-12, err_msg=name)
