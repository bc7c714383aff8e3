"""The rank side of tests/distributed: `python workers.py SCENARIO OUT_DIR` under torchrun's variables.

Each scenario runs on every rank and saves what the tests compare (arrays to OUT/rank<r>.npz,
facts to OUT/rank<r>.json); the tests hold the references. Inputs are drawn from seeds that the
tests know, so they can compute the expected values independently.
"""
from __future__ import annotations

import json
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
    groups(out, info, rank, world)


def groups(out: dict, info: dict, rank: int, world: int) -> None:
    """Ranks, backend, subgroups and the barrier."""
    import time
    info["rank"], info["world"], info["backend"] = dist.get_rank(), dist.get_world_size(), dist.get_backend()
    singletons = [dist.new_group([r]) for r in range(world)]  # every rank creates every group, in order
    mine = singletons[rank]
    info["own_group"] = [dist.get_rank(mine), dist.get_world_size(mine)]
    alone = tf.from_numpy(rank_data(rank, (3,), seed=8))
    dist.all_reduce(alone, group=mine)
    out["own_group_sum"] = alone.numpy()
    everyone = dist.new_group()
    shared = tf.from_numpy(rank_data(rank, (3,), seed=9))
    dist.all_reduce(shared, group=everyone)
    out["subgroup_sum"] = shared.numpy()
    # The barrier holds every rank until the last one arrives: the last rank sleeps first.
    if rank == world - 1:
        time.sleep(0.3)
    start = time.monotonic()
    dist.barrier()
    info["barrier_wait"] = time.monotonic() - start
    for group in singletons + [everyone]:
        dist.destroy_process_group(group)


# ---------------------------------------------------------------- data-parallel training

ROWS = 16        # the combined batch of one step; each rank trains on its ROWS / world rows
STEPS = 10


def mlp(seed: int):
    """The model the DDP tests train (float64, so agreement is limited by the algorithm, not rounding)."""
    from tritonflow import nn
    tf.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)).double()


def batch(step: int, rows: int = ROWS):
    rng = np.random.default_rng(1000 + step)
    return rng.standard_normal((rows, 6)), rng.integers(0, 3, rows)


def shard(array: np.ndarray, rank: int, world: int) -> np.ndarray:
    rows = len(array) // world
    return array[rank * rows:(rank + 1) * rows]


def loss_of(model, x: np.ndarray, y: np.ndarray, scale: float = 1.0):
    import tritonflow.nn.functional as F
    return F.cross_entropy(model(tf.tensor(x)), tf.tensor(y)) * scale


def train_step(model, opt, x, y):
    opt.zero_grad()
    loss = loss_of(model, x, y) if isinstance(x, np.ndarray) else _loss_tensors(model, x, y)
    loss.backward()
    opt.step()
    return loss


def _loss_tensors(model, x, y):
    import tritonflow.nn.functional as F
    return F.cross_entropy(model(x), y)


def parameters_of(model) -> dict:
    return {name: p.detach().numpy().copy() for name, p in model.named_parameters()}


def _save(out: dict, prefix: str, model) -> None:
    for name, value in parameters_of(model).items():
        out[f"{prefix}/{name}"] = value


def _ddp_run(rank, world, wrap, steps=STEPS, jitted=None, **ddp_options):
    """Train mlp(rank) — a different start on every rank: DDP's broadcast makes them equal — for
    `steps` steps on this rank's shard; `wrap(ddp)` is what is called."""
    from tritonflow.nn.parallel import DistributedDataParallel as DDP
    ddp = DDP(mlp(rank), **ddp_options)
    opt = tf.optim.Adam(ddp.parameters(), lr=1e-2)
    model = wrap(ddp)
    for step in range(steps):
        x, y = batch(step)
        x, y = shard(x, rank, world), shard(y, rank, world)
        if jitted is not None:
            jitted(model, opt, tf.tensor(x), tf.tensor(y))
        else:
            train_step(model, opt, x, y)
    return ddp


def _record_launches(info: dict, key: str):
    """Note, at each bucket launch of the first step, how many gradients the backward has still to make."""
    from tritonflow.nn.parallel.reducer import Reducer
    launch = Reducer._launch

    def recording(self, b):
        if self.buckets_launched < len(self.buckets):
            info.setdefault(key, []).append(sum(p.grad is None for p in self.params))
        launch(self, b)
    Reducer._launch = recording
    return lambda: setattr(Reducer, "_launch", launch)


@scenario
def ddp(out: dict, info: dict, rank: int, world: int) -> None:
    restore = _record_launches(info, "eager_missing_at_launch")
    run = _ddp_run(rank, world, lambda m: m, bucket_cap_mb=0.0005)  # ~500 bytes: several buckets
    restore()
    _save(out, "eager", run.module)
    info["eager_buckets"] = len(run.bucket_indices)
    info["eager_launched"] = run.reducer.buckets_launched
    _save(out, "eager_one_bucket", _ddp_run(rank, world, lambda m: m).module)
    restore = _record_launches(info, "compile_missing_at_launch")
    compiled = []
    run = _ddp_run(rank, world, lambda m: compiled.append(tf.compile(m, backend="numpy")) or compiled[0],
                   bucket_cap_mb=0.0005)
    restore()
    _save(out, "compile_ddp", run.module)
    info["compile_launched"] = run.reducer.buckets_launched
    entry = next(iter(compiled[0].jit_function.entries.values()))
    info["compile_backward_stages"] = len(entry.backward_runner.stages)
    _save(out, "ddp_of_compiled", _ddp_compiled_inside(rank, world).module)
    step = tf.jit(train_step, backend="numpy")
    _save(out, "jit_step", _ddp_run(rank, world, lambda m: m, jitted=step, bucket_cap_mb=0.0005).module)
    info["jit_step_compiles"] = step.cache_info().misses
    info["jit_step_all_reduces"] = str(next(iter(step.entries.values())).graph).count("= all_reduce[")
    _save(out, "jit_closed_step", _ddp_closed_over(rank, world, info).module)
    step_triton = tf.jit(train_step, backend="triton")
    # One step: the triton backend runs under Triton's interpreter here (compiling is the cost).
    _save(out, "jit_step_triton", _ddp_run(rank, world, lambda m: m, steps=1, jitted=step_triton,
                                           bucket_cap_mb=0.0005).module)


def _ddp_closed_over(rank, world, info):
    """A jitted step that reads the DDP model and its optimizer from its closure (not arguments)."""
    from tritonflow.nn.parallel import DistributedDataParallel as DDP
    ddp = DDP(mlp(rank), bucket_cap_mb=0.0005)
    opt = tf.optim.Adam(ddp.parameters(), lr=1e-2)

    @tf.jit(backend="numpy")
    def step(x, y):
        return train_step(ddp, opt, x, y)
    for number in range(STEPS):
        x, y = batch(number)
        step(tf.tensor(shard(x, rank, world)), tf.tensor(shard(y, rank, world)))
    info["jit_closed_compiles"] = step.cache_info().misses
    info["jit_closed_all_reduces"] = str(next(iter(step.entries.values())).graph).count("= all_reduce[")
    return ddp


def _ddp_compiled_inside(rank, world):
    from tritonflow.nn.parallel import DistributedDataParallel as DDP
    ddp = DDP(tf.compile(mlp(rank), backend="numpy"), bucket_cap_mb=0.0005)
    opt = tf.optim.Adam(ddp.parameters(), lr=1e-2)
    for step in range(STEPS):
        x, y = batch(step)
        train_step(ddp, opt, shard(x, rank, world), shard(y, rank, world))
    return ddp


ACCUMULATE = 2  # micro-batches per optimizer step in the no_sync scenario


@scenario
def no_sync(out: dict, info: dict, rank: int, world: int) -> None:
    """Each step: ACCUMULATE micro-batches per rank, all but the last inside no_sync()."""
    from tritonflow.nn.parallel import DistributedDataParallel as DDP
    model = DDP(mlp(rank))
    opt = tf.optim.Adam(model.parameters(), lr=1e-2)
    launched_inside = 0
    for step in range(3):
        x, y = batch(100 + step, ROWS * ACCUMULATE)
        x, y = shard(x, rank, world), shard(y, rank, world)
        opt.zero_grad()
        for micro in range(ACCUMULATE):
            rows = slice(micro * len(x) // ACCUMULATE, (micro + 1) * len(x) // ACCUMULATE)
            if micro < ACCUMULATE - 1:
                before = model.reducer.buckets_launched
                with model.no_sync():
                    loss_of(model, x[rows], y[rows], 1.0 / ACCUMULATE).backward()
                launched_inside += model.reducer.buckets_launched - before
            else:
                loss_of(model, x[rows], y[rows], 1.0 / ACCUMULATE).backward()
        opt.step()
    info["launched_inside_no_sync"] = launched_inside
    _save(out, "no_sync", model.module)


class TwoHeads(tf.nn.Module):
    """A trunk and three heads: each rank uses its own head, and one head is never used."""

    def __init__(self, seed: int) -> None:
        from tritonflow import nn
        super().__init__()
        tf.manual_seed(seed)
        self.trunk = nn.Linear(6, 8)
        self.head_a = nn.Linear(8, 3)
        self.head_b = nn.Linear(8, 3)
        self.never = nn.Linear(8, 3)
        self.double()

    def forward(self, x, which: int):
        return (self.head_a if which == 0 else self.head_b)(tf.tanh(self.trunk(x)))


def two_heads_loss(model, x, y, which: int):
    import tritonflow.nn.functional as F
    return F.cross_entropy(model(tf.tensor(x), which), tf.tensor(y))


@scenario
def unused(out: dict, info: dict, rank: int, world: int) -> None:
    from tritonflow.nn.parallel import DistributedDataParallel as DDP
    model = DDP(TwoHeads(rank), find_unused_parameters=True, bucket_cap_mb=0.0002)
    opt = tf.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(3):
        x, y = batch(step)
        opt.zero_grad()
        two_heads_loss(model, shard(x, rank, world), shard(y, rank, world), rank % 2).backward()
        opt.step()
    info["never_grad_is_none"] = model.module.never.weight.grad is None
    _save(out, "unused", model.module)


class Scaled(tf.nn.Module):
    """A linear layer times a buffer (state that is not trained: DDP broadcasts it before each forward)."""

    def __init__(self) -> None:
        from tritonflow import nn
        super().__init__()
        tf.manual_seed(0)
        self.linear = nn.Linear(3, 2)
        self.register_buffer("scale", tf.ones(2))

    def forward(self, x):
        return self.linear(x) * self.scale


@scenario
def buffers(out: dict, info: dict, rank: int, world: int) -> None:
    from tritonflow.nn.parallel import DistributedDataParallel as DDP
    for name, wrap in (("eager", lambda m: m), ("compiled", lambda m: tf.compile(m, backend="numpy"))):
        model = DDP(Scaled())
        forward = wrap(model)
        for step in range(2):
            # Each rank changes its buffer; the forward must use, and leave, rank 0's value.
            model.module.scale.copy_(tf.full((2,), float(10 * step + rank + 2)))
            y = forward(tf.ones((1, 3)))
            out[f"buffers/{name}/{step}/scale"] = model.module.scale.numpy().copy()
            out[f"buffers/{name}/{step}/y"] = y.detach().numpy()


@scenario
def suite(out: dict, info: dict, rank: int, world: int) -> None:
    """Every scenario that leaves the group healthy, in one launch (process start-up is the cost)."""
    for name in ("collectives", "ddp", "no_sync", "unused", "zero", "buffers"):
        SCENARIOS[name](out, info, rank, world)


# ---------------------------------------------------------------- failures

QUIET_TIMEOUT = 3.0  # seconds: the group on which a rank stops answering


@scenario
def failures(out: dict, info: dict, rank: int, world: int) -> None:
    """Wrong uses that every rank survives, then a rank that stops answering, then one that raises."""
    import time
    from tritonflow import nn
    from tritonflow.nn.parallel import DistributedDataParallel as DDP
    try:  # different models on different ranks
        DDP(nn.Sequential(nn.Linear(4, 5 + rank), nn.ReLU()))
    except tf.ShapeError as exc:
        info["mismatch"] = str(exc)
    model = DDP(TwoHeads(0))
    x, y = batch(0)
    x, y = shard(x, rank, world), shard(y, rank, world)
    try:  # head_b and never get no gradient, and find_unused_parameters is off
        two_heads_loss(model, x, y, 0).backward()
    except dist.DistributedError as exc:
        info["unused"] = str(exc)

    # A rank that stops answering: on a group with a short timeout, rank 1 never joins the step.
    quiet = dist.new_group(timeout=QUIET_TIMEOUT)
    model = DDP(mlp(0), process_group=quiet)
    opt = tf.optim.Adam(model.parameters(), lr=1e-2)
    if rank == 0:
        start = time.monotonic()
        try:
            train_step(model, opt, x, y)
        except dist.DistributedError as exc:
            info["stuck_error"] = str(exc)
        info["stuck_seconds"] = time.monotonic() - start
    dist.barrier()  # the world's group still works

    # A rank that raises: the survivor fails at its next collective.
    model = DDP(mlp(0))
    opt = tf.optim.Adam(model.parameters(), lr=1e-2)
    train_step(model, opt, x, y)
    if rank == 1:
        raise RuntimeError("rank 1 fails on purpose")
    start = time.monotonic()
    try:
        train_step(model, opt, x, y)
    finally:
        info["seconds_to_fail"] = time.monotonic() - start


# ---------------------------------------------------------------- ZeRO stage 1

def _adamw(params):
    return tf.optim.AdamW(params, lr=1e-2, weight_decay=0.05)


@scenario
def zero(out: dict, info: dict, rank: int, world: int) -> None:
    from tritonflow.distributed.optim import ZeroRedundancyOptimizer, optimizer_state_bytes
    from tritonflow.nn.parallel import DistributedDataParallel as DDP
    runs = {}
    for name in ("plain", "zero"):
        model = DDP(mlp(rank))
        if name == "plain":
            opt = _adamw(model.parameters())
        else:
            opt = ZeroRedundancyOptimizer(model.parameters(), tf.optim.AdamW, lr=1e-2, weight_decay=0.05)
        schedule = tf.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
        for step in range(STEPS):
            x, y = batch(step)
            train_step(model, opt, shard(x, rank, world), shard(y, rank, world))
            schedule.step()
        _save(out, name, model.module)
        runs[name] = (model, opt)
    plain, zero_opt = runs["plain"][1], runs["zero"][1]
    info["plain_state_bytes"] = optimizer_state_bytes(plain)
    info["zero_state_bytes"] = zero_opt.state_bytes()
    info["owned_elements"] = sum(p.numel() for g in zero_opt.optim.param_groups for p in g["params"])
    info["zero_lr"] = zero_opt.optim.param_groups[0]["lr"]
    zero_opt.consolidate_state_dict(to=0)
    if rank == 0:
        full, want = zero_opt.state_dict(), plain.state_dict()
        info["state_keys"] = [sorted(full["state"]), sorted(want["state"])]
        for i, entry in want["state"].items():
            for key, value in entry.items():
                out[f"consolidated/{i}/{key}"] = full["state"][i][key].numpy()
                out[f"plain_state/{i}/{key}"] = value.numpy()
    # A fresh sharded optimizer loads the unsharded one's state, and both take the same next step.
    resumed = ZeroRedundancyOptimizer(runs["zero"][0].parameters(), tf.optim.AdamW, lr=1e-2, weight_decay=0.05)
    resumed.load_state_dict(plain.state_dict())
    for name, opt in (("plain", plain), ("resumed", resumed)):
        model = runs["plain" if name == "plain" else "zero"][0]
        x, y = batch(STEPS)
        train_step(model, opt, shard(x, rank, world), shard(y, rank, world))
        _save(out, f"after_load_{name}", model.module)


# ---------------------------------------------------------------- entry point

RANK_TIMEOUT = 20.0  # seconds any collective may wait for the other ranks


def main() -> int:
    name, out_dir = sys.argv[1], Path(sys.argv[2])
    dist.init_process_group(timeout=RANK_TIMEOUT)
    rank, world = dist.get_rank(), dist.get_world_size()
    arrays: dict = {}
    info: dict = {}
    try:
        SCENARIOS[name](arrays, info, rank, world)
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
