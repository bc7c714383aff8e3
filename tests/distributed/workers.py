"""The rank side of tests/distributed: `python workers.py SCENARIO OUT_DIR [ARGS]` under torchrun's variables.

Each scenario runs on every rank and saves what the tests compare (arrays to OUT/rank<r>.npz,
facts to OUT/rank<r>.json); the tests hold the references. Inputs are drawn from seeds that the
tests know, so they can compute the expected values independently.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import tritonflow as tf  # noqa: E402
import tritonflow.distributed as dist  # noqa: E402

SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def rank_data(rank: int, shape: tuple, dtype=np.float32, seed: int = 0) -> np.ndarray:
    """The input rank `rank` contributes (the tests draw the same)."""
    return np.random.default_rng(seed * 100 + rank).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------- collectives

@scenario
def collectives(out: dict, info: dict, rank: int, world: int) -> None:
    x = tf.from_numpy(rank_data(rank, (5, 3)))
    address = x._data.ctypes.data  # (holding the array itself would make it shared)
    dist.all_reduce(x)
    out["sum"] = x.numpy()
    info["sum_in_place"] = x._data.ctypes.data == address  # an array only x held: reduced where it lies

    shared = tf.from_numpy(rank_data(rank, (4,)))
    alias = shared.detach()
    dist.all_reduce(shared, op=dist.ReduceOp.MAX)
    out["max"], out["alias_after"] = shared.numpy(), alias.numpy()

    for name, op in (("avg", dist.ReduceOp.AVG), ("product", dist.ReduceOp.PRODUCT), ("min", "min")):
        t = tf.from_numpy(rank_data(rank, (6,), seed=1))
        dist.all_reduce(t, op=op)
        out[name] = t.numpy()
    half = tf.tensor(rank_data(rank, (7,), seed=2), dtype="bfloat16")
    dist.all_reduce(half)
    out["bf16_sum"] = half.float().numpy()
    ints = tf.tensor(np.arange(4) * (rank + 1))
    dist.all_reduce(ints)
    out["int_sum"] = ints.numpy()

    b = tf.from_numpy(rank_data(rank, (2, 2), seed=3))
    work = dist.broadcast(b, src=world - 1, async_op=True)
    work.wait()
    out["broadcast"] = b.numpy()

    parts = [tf.zeros((3,)) for _ in range(world)]
    dist.all_gather(parts, tf.from_numpy(rank_data(rank, (3,), seed=4)))
    out["all_gather"] = np.stack([p.numpy() for p in parts])
    gathered = tf.zeros((2 * world, 2))
    dist.all_gather_into_tensor(gathered, tf.from_numpy(rank_data(rank, (2, 2), seed=5)))
    out["all_gather_into_tensor"] = gathered.numpy()
    mine = tf.zeros((2, 3))
    dist.reduce_scatter_tensor(mine, tf.from_numpy(rank_data(rank, (2 * world, 3), seed=6)))
    out["reduce_scatter_tensor"] = mine.numpy()
    mine_list = tf.zeros((3,))
    dist.reduce_scatter(mine_list, [tf.from_numpy(rank_data(rank, (3,), seed=10 + k)) for k in range(world)])
    out["reduce_scatter"] = mine_list.numpy()

    pending = tf.from_numpy(rank_data(rank, (8,), seed=7))
    work = dist.all_reduce(pending, async_op=True)
    work.wait()
    out["async_sum"] = pending.numpy()

    for backend in ("numpy", "triton"):
        @tf.jit(backend=backend)
        def traced(x, y):
            h = x * 2.0
            dist.all_reduce(h)
            g = tf.zeros((2 * world, 2))
            dist.all_gather_into_tensor(g, y + 1.0)
            dist.broadcast(y, src=0)
            return h + 1.0, g, y
        h, g, y = traced(tf.from_numpy(rank_data(rank, (5, 3))), tf.from_numpy(rank_data(rank, (2, 2), seed=5)))
        out[f"jit_{backend}_sum"], out[f"jit_{backend}_gather"], out[f"jit_{backend}_bcast"] = \
            h.numpy(), g.numpy(), y.numpy()
    try:
        dist.all_gather([tf.zeros(3)], tf.zeros(3))
    except tf.ShapeError as exc:
        info["bad_gather"] = str(exc)


# ---------------------------------------------------------------- entry point

def main() -> int:
    name, out_dir = sys.argv[1], Path(sys.argv[2])
    args = sys.argv[3:]
    timeout = float(os.environ.get("TEST_DIST_TIMEOUT", "20"))
    dist.init_process_group(timeout=timeout)
    rank, world = dist.get_rank(), dist.get_world_size()
    arrays: dict = {}
    info: dict = {}
    try:
        SCENARIOS[name](arrays, info, rank, world, *args)
    except BaseException as exc:
        info["error_type"] = type(exc).__name__
        info["error"] = str(exc)
        info["traceback"] = traceback.format_exc()
        raise
    finally:
        np.savez(out_dir / f"rank{rank}.npz", **arrays)
        (out_dir / f"rank{rank}.json").write_text(json.dumps(info))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
