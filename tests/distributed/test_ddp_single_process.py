"""DDP and ZeRO in this process, in a world of one (gloo over loopback): recovery, a closed-over
jitted step under no_sync, and misuse errors."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from harness import free_port  # noqa: E402
from workers import batch, loss_of, mlp, parameters_of, train_step  # noqa: E402

import tritonflow as tf  # noqa: E402
import tritonflow.distributed as dist  # noqa: E402
from tritonflow.distributed.optim import ZeroRedundancyOptimizer  # noqa: E402
from tritonflow.nn.parallel import DistributedDataParallel as DDP  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def world_of_one():
    dist.init_process_group(backend="gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1,
                            timeout=30)
    yield
    dist.destroy_process_group()


def test_a_backward_that_failed_midway_does_not_stall_the_next():
    model = DDP(mlp(0), bucket_cap_mb=0.0005)
    first = model.module[0].weight  # its gradient comes last: the other buckets have started by then
    handle = first.register_post_accumulate_grad_hook(lambda t: (_ for _ in ()).throw(RuntimeError("boom")))
    x, y = batch(0)
    with pytest.raises(RuntimeError, match="boom"):
        loss_of(model, x, y).backward()
    handle.remove()
    for p in model.parameters():
        p.grad = None
    before = model.reducer.buckets_launched
    loss_of(model, x, y).backward()
    assert model.reducer.buckets_launched - before == len(model.bucket_indices) == 3
    reference = mlp(0)
    loss_of(reference, x, y).backward()
    for (name, ours), theirs in zip(model.module.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, err_msg=name)


def test_a_world_of_one_trains_like_no_ddp():
    model, reference = DDP(mlp(0)), mlp(0)
    opts = [tf.optim.Adam(m.parameters(), lr=1e-2) for m in (model, reference)]
    for step in range(3):
        for m, opt in zip((model, reference), opts):
            train_step(m, opt, *batch(step))
    want = parameters_of(reference)
    for name, value in parameters_of(model.module).items():
        np.testing.assert_allclose(value, want[name], rtol=1e-12, err_msg=name)


def test_a_closed_over_jitted_step_compiles_again_inside_no_sync():
    model, reference = DDP(mlp(0), bucket_cap_mb=0.0005), mlp(0)
    opt, reference_opt = (tf.optim.Adam(m.parameters(), lr=1e-2) for m in (model, reference))

    @tf.jit(backend="numpy")
    def accumulate(x, y):
        loss_of(model, x, y).backward()

    graphs = []
    for step in range(3):
        x, y = batch(step)
        opt.zero_grad()
        with model.no_sync():
            accumulate(tf.tensor(x[:8]), tf.tensor(y[:8]))
        accumulate(tf.tensor(x[8:]), tf.tensor(y[8:]))
        opt.step()
        graphs = [str(entry.graph) for entry in accumulate.entries.values()]
        reference_opt.zero_grad()
        loss_of(reference, x[:8], y[:8]).backward()
        loss_of(reference, x[8:], y[8:]).backward()
        reference_opt.step()
    # Two graphs, one per no_sync state: the one inside averages nothing, the one outside 3 buckets.
    assert accumulate.cache_info().misses == 2
    assert sorted(g.count("= all_reduce[") for g in graphs) == [0, 3]
    want = parameters_of(reference)
    for name, value in parameters_of(model.module).items():
        np.testing.assert_allclose(value, want[name], rtol=1e-12, err_msg=name)


def test_misuse_is_named():
    with pytest.raises(tf.UnsupportedError, match="no parameter that requires grad"):
        DDP(tf.nn.ReLU())
    with pytest.raises(tf.DTypeError, match="expected an nn.Module"):
        DDP(lambda x: x)
    model = DDP(mlp(0))
    zero = ZeroRedundancyOptimizer(model.parameters(), tf.optim.Adam, lr=1e-2)
    with pytest.raises(dist.DistributedError, match=r"call consolidate_state_dict\(to=0\) on every rank first"):
        zero.state_dict()

    @tf.jit
    def sharded_step(m, x):
        m(x).sum().backward()
        zero.step()
    with pytest.raises(tf.UnsupportedError, match="ZeroRedundancyOptimizer.step inside a jitted function"):
        sharded_step(model, tf.tensor(batch(0)[0]))
