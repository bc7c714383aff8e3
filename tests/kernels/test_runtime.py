"""The runtime (kernels/runtime.py): call plans replay the first call's decisions, intermediates
share an arena by lifetime, strides and symbol values still come from each call."""
import numpy as np
import pytest
import sympy
import torch

import kernels
from kernel_helpers import Builder, assert_close, to_numpy, to_torch
from tritonflow import dtypes as D

F32 = D.float32


def chained_reductions(rows=8, cols=16):
    """Four reductions that cannot share a kernel: each reads the previous one's stored result."""
    b = Builder("chain")
    x = b.input("x", (rows, cols))
    shape = (rows, cols)
    s1 = b("reduce_sum", x, dims=(1,), keepdim=True)                                   # rows
    s2 = b("reduce_sum", b("div", x, b("expand", s1, shape=shape)), dims=(0,), keepdim=True)  # cols
    s3 = b("reduce_sum", b("mul", x, b("expand", s2, shape=shape)), dims=(1,), keepdim=True)  # rows
    s4 = b("reduce_sum", b("div", x, b("expand", s3, shape=shape)), dims=(0,), keepdim=False)
    return b.finish(s4)


def chained_reference(x):
    x = x.astype(np.float64)
    s1 = x.sum(1, keepdims=True)
    s2 = (x / s1).sum(0, keepdims=True)
    s3 = (x * s2).sum(1, keepdims=True)
    return (x / s3).sum(0)


def _forbid_general_path(low, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a repeated call took the general path instead of its plan")
    monkeypatch.setattr(low, "_call_general", fail)


def test_plan_replays_with_new_data_and_shares_intermediate_memory(monkeypatch):
    g = chained_reductions()
    low = kernels.lower(g)
    assert len(low.kernels) == 4
    rng = np.random.default_rng(0)
    first = rng.uniform(1, 2, (8, 16)).astype(np.float32)
    (out,) = low([to_torch(first)], {})
    assert_close(to_numpy(out), chained_reference(first), F32, scale=64)
    _forbid_general_path(low, monkeypatch)
    outputs = []
    for _ in range(2):
        x = rng.uniform(1, 2, (8, 16)).astype(np.float32)
        (out,) = low([to_torch(x)], {})
        assert_close(to_numpy(out), chained_reference(x), F32, scale=64)
        outputs.append(out)
    assert outputs[0].data_ptr() != outputs[1].data_ptr()  # every call returns fresh outputs
    (plan,) = low._plans.values()
    # s1, s2, s3 are intermediates; s1 is dead once s2 is computed, so s3 takes its bytes.
    assert len(plan.arena) == 3 and len({b.offset for b in plan.arena}) == 2
    assert plan.calls == 2


def test_strides_are_read_per_call_for_strided_inputs(monkeypatch):
    b = Builder()
    a, c = b.input("a", (4, 6)), b.input("c", (4, 6))
    g = b.finish(b("mul", b("add", a, c), b.const(3.0)))
    low = kernels.lower(g)
    rng = np.random.default_rng(1)
    cc = rng.standard_normal((4, 6)).astype(np.float32)
    views = [to_torch(rng.standard_normal((6, 4)).astype(np.float32)).t(),        # transposed
             to_torch(rng.standard_normal((4, 12)).astype(np.float32))[:, ::2],   # every other column
             to_torch(rng.standard_normal((8, 6)).astype(np.float32))[::2]]       # every other row
    for k, view in enumerate(views):
        assert not view.is_contiguous()
        (out,) = low([view, to_torch(cc)], {})
        want = (to_numpy(view.contiguous()).astype(np.float64) + cc) * 3
        assert_close(to_numpy(out), want, F32)
        if k == 0:
            _forbid_general_path(low, monkeypatch)
    assert len(low._plans) == 1


def test_symbol_values_get_their_own_plans():
    s0 = sympy.Symbol("s0", integer=True, positive=True)
    b = Builder()
    x = b.input("x", (s0, 5))
    m = b("reduce_max", x, dims=(1,), keepdim=True)
    g = b.finish(b("sub", x, b("expand", m, shape=(s0, 5))))
    low = kernels.lower(g)
    rng = np.random.default_rng(2)
    for n in (3, 7, 3, 7):
        xx = rng.standard_normal((n, 5)).astype(np.float32)
        (out,) = low([to_torch(xx)], {"s0": n})
        assert_close(to_numpy(out), xx - xx.max(1, keepdims=True), F32)
    assert len(low._plans) == 2


def test_pack_arena_reuses_only_dead_blocks():
    from kernels.runtime import ARENA_ALIGN, Buffer, pack_arena
    bufs = [Buffer(0, (10,), torch.float32, 40), Buffer(1, (10,), torch.float32, 40),
            Buffer(2, (1000,), torch.float32, 4000), Buffer(3, (5,), torch.float32, 20)]
    lifetimes = {0: (0, 1), 1: (1, 2), 2: (2, 3), 3: (3, 3)}
    total = pack_arena(bufs, lifetimes)
    # 0 and 1 overlap at step 1; 2 is too big for block 0; 3 starts after 0 and 1 died.
    assert bufs[0].offset != bufs[1].offset
    assert bufs[2].offset not in (bufs[0].offset, bufs[1].offset)
    assert bufs[3].offset in (bufs[0].offset, bufs[1].offset)
    assert total == 2 * ARENA_ALIGN + 4096
    assert all(b.offset % ARENA_ALIGN == 0 for b in bufs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="direct launchers exist only for CUDA kernels")
def test_cuda_steps_keep_a_launcher_per_alignment():
    b = Builder()
    x = b.input("x", (1000,))
    g = b.finish(b("mul", x, b.const(2.0)))
    low = kernels.lower(g)
    base = torch.randn(1001, device="cuda")
    for _ in range(3):
        (out,) = low([base[:1000]], {})
        (shifted,) = low([base[1:]], {})   # 4-byte offset: not 16-byte aligned, another kernel
    torch.testing.assert_close(out, base[:1000] * 2)
    torch.testing.assert_close(shifted, base[1:] * 2)
    (plan,) = low._plans.values()
    assert len(plan.steps[0].launchers) == 2
