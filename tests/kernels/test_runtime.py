"""The runtime (kernels/runtime/call_plan.py): call plans replay the first call's decisions, intermediates
share an arena by lifetime, strides and symbol values still come from each call."""
import numpy as np
import pytest
import sympy
import torch

from tritonflow import kernels
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
    from tritonflow.kernels.runtime.call_plan import ARENA_ALIGN, Buffer, pack_arena
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


def _memory_at(pointer: int, nbytes: int, dtype, shape):
    """A CPU tensor over raw memory (what a GPU launcher receives is just the address)."""
    import ctypes
    raw = np.ctypeslib.as_array((ctypes.c_uint8 * max(nbytes, 1)).from_address(pointer))
    return torch.from_numpy(raw).view(dtype)[: int(np.prod(shape, dtype=np.int64))].view(shape)


@pytest.mark.skipif(torch.cuda.is_available(), reason="emulates GPU launchers with CPU memory; on a GPU the "
                    "real launchers run in every test (test_cuda_steps_keep_a_launcher_per_alignment)")
def test_generated_launcher_passes_the_right_pointers_grid_and_constexprs():
    """The CUDA launcher code, run on CPU: each fake 'launcher' rebuilds tensors from the raw
    pointers it is given and runs the kernel in the interpreter, so wrong pointers, grids or
    constexpr values give wrong results."""
    from types import SimpleNamespace
    from tritonflow.kernels.runtime.call_plan import _specialization_key, make_direct_runner
    g = chained_reductions(6, 10)
    low = kernels.lower(g)
    rng = np.random.default_rng(3)
    x0 = rng.uniform(1, 2, (6, 10)).astype(np.float32)
    low([to_torch(x0)], {})
    (plan,) = low._plans.values()
    info = {b.slot: b for b in plan.outputs + plan.arena}
    calls = []

    def fake_launcher(step):
        def run(gx, gy, gz, stream, function, metadata, meta, enter, exit_, *values):
            calls.append((step.kernel.generated.name, (gx, gy, gz), stream, values[len(step.sources):]))
            args = []
            for source, value in zip(step.sources, values):
                if source[0] != "slot":
                    args.append(value)
                elif source[1] < plan.n_inputs:
                    args.append(current_inputs[source[1]])
                    assert value == current_inputs[source[1]].data_ptr()
                else:
                    b = info[source[1]]
                    args.append(_memory_at(value, b.nbytes, b.dtype, b.shape))
            assert tuple(values[len(step.sources):]) == step.tail
            step.kernel.fn[(gx, gy, gz)](*args, **step.config)
        return run

    env = plan.allocate([to_torch(x0)])
    for step in plan.steps:
        step.tail = tuple(step.config[k] for k in ("XBLOCK", "RBLOCK") if k in step.config)
        step.launchers[_specialization_key(step, env)] = (fake_launcher(step), "function", "metadata")
    hooks = SimpleNamespace(launch_enter_hook=None, launch_exit_hook=None)
    direct = make_direct_runner(plan, stream_getter=lambda index: 1234, hooks=hooks)
    assert "arena" in direct.source and "_launchers3.get" in direct.source
    for _ in range(2):
        x = rng.uniform(1, 2, (6, 10)).astype(np.float32)
        current_inputs = [to_torch(x)]
        (out,) = direct(current_inputs)
        assert_close(to_numpy(out), chained_reference(x), F32, scale=64)
    assert [c[0] for c in calls[:4]] == [s.kernel.generated.name for s in plan.steps]
    assert all(c[2] == 1234 for c in calls)
    hooks.launch_enter_hook = print  # a profiler hook wants metadata: the general path runs instead
    assert direct([to_torch(x0)]) is None


def test_reduce_overhead_on_cpu_runs_as_default_with_one_note(caplog):
    import logging
    import tritonflow as tf
    if torch.cuda.is_available():
        pytest.skip("on a GPU the mode captures graphs (test_reduce_overhead_replays_cuda_graphs)")
    f = tf.jit(lambda x: (x * 2.0).exp().sum(-1), backend="triton", mode="reduce-overhead")
    rng = np.random.default_rng(4)
    with caplog.at_level(logging.WARNING, logger="tritonflow.kernels"):
        for _ in range(3):
            x = rng.standard_normal((3, 5)).astype(np.float32)
            got = f(tf.tensor(x)).numpy()
            assert_close(got, np.exp(2.0 * x.astype(np.float64)).sum(-1), F32, scale=8)
    notes = [r for r in caplog.records if "reduce-overhead" in r.getMessage()]
    assert len(notes) == 1 and "mode='default'" in notes[0].getMessage()


def test_lower_rejects_unknown_mode():
    with pytest.raises(ValueError, match="reduce-overhead"):
        kernels.lower(chained_reductions(), mode="fastest")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_reduce_overhead_replays_cuda_graphs(caplog):
    import logging
    from tritonflow.kernels.runtime import cuda_graphs
    low = kernels.lower(chained_reductions(64, 512), mode="reduce-overhead")
    x = torch.rand(64, 512, device="cuda") + 1
    outs = []
    for _ in range(4):
        x.uniform_(1, 2)                          # same address, new contents
        (out,) = low([x], {})
        torch.testing.assert_close(out.double().cpu(), torch.from_numpy(chained_reference(x.cpu().numpy())),
                                   rtol=1e-4, atol=1e-5)
        outs.append(out)
    (graphed,) = low._graphed.values()
    assert graphed.captures == 1 and graphed.replays == 2   # call 1 records, 2 captures, 3-4 replay
    assert len({o.data_ptr() for o in outs}) == 4           # outputs are fresh every call
    with caplog.at_level(logging.WARNING, logger="tritonflow.kernels"):
        for _ in range(cuda_graphs.MAX_ENTRIES + 1):
            y = torch.rand(64, 512, device="cuda") + 1
            (out,) = low([y], {})
            torch.testing.assert_close(out.double().cpu(), torch.from_numpy(chained_reference(y.cpu().numpy())),
                                       rtol=1e-4, atol=1e-5)
    assert graphed.disabled and any("reduce-overhead" in r.getMessage() for r in caplog.records)
