"""tritonflow.profile(): per compiled call, per IR node (the interpreter) and per kernel (the triton
backend); counts against the compiled graph, bytes against the arrays' sizes, the cost-model slot,
the table and a Chrome trace in the Trace Event Format."""
from __future__ import annotations

import inspect
import json

import numpy as np

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow import profile_hooks as hooks


def mlp_layer(x, w, b):
    h = x @ w                          # the matmul's line
    return F.gelu(h + b, approximate="tanh")


_SOURCE, _FIRST = inspect.getsourcelines(mlp_layer)
MATMUL_LINE = f"test_profiler.py:{_FIRST + next(i for i, t in enumerate(_SOURCE) if 'the matmul' in t)}"


def _args():
    return tf.randn(8, 16), tf.randn(16, 24), tf.randn(24)


def test_interpreter_records_every_ir_node_of_every_call():
    fn = tf.jit(mlp_layer, backend="numpy")
    x, w, b = _args()
    fn(x, w, b)                                     # compiled before the block: only runs are timed
    graph = fn.entry_for((x, w, b), {})[0].graph
    body = [n for n in graph.nodes if n.op != "constant"]
    with tf.profile() as prof:
        for _ in range(3):
            fn(x, w, b)
    assert hooks.active() is None
    (function,) = prof.key_averages("function")
    assert function.name == "mlp_layer" and function.calls == 3 and "numpy" in function.device
    nodes = prof.key_averages("node")
    assert len(nodes) == len(body) and all(r.calls == 3 for r in nodes)
    assert sum(r.total_ns for r in nodes) <= function.total_ns
    matmul = next(r for r in nodes if " matmul " in r.name)
    assert matmul.source == [MATMUL_LINE]
    want_bytes = x.numpy().nbytes + w.numpy().nbytes + (x.numpy() @ w.numpy()).nbytes
    assert matmul.bytes == 3 * want_bytes
    assert matmul.flops is None       # the interpreter has no cost model: no FLOPs claimed


def test_nothing_is_recorded_outside_the_block_and_the_innermost_block_records():
    fn = tf.jit(mlp_layer)
    args = _args()
    with tf.profile() as outer:
        fn(*args)
        with tf.profile() as inner:
            fn(*args)
        fn(*args)
    fn(*args)
    assert outer.key_averages("function")[0].calls == 2
    assert inner.key_averages("function")[0].calls == 1


def test_triton_backend_records_each_kernel_with_its_source_lines():
    fn = tf.jit(mlp_layer, backend="triton")
    args = _args()
    kernels = [k.name for k in tf.explain(fn, *args).kernels]
    fn(*args)
    with tf.profile() as prof:
        fn(*args)
        fn(*args)
    rows = prof.key_averages("kernel")
    assert sorted(r.name.split(" ")[0] for r in rows) == sorted(kernels)
    assert all(r.calls == 2 and r.total_ns > 0 for r in rows)
    assert all(any(s.startswith("test_profiler.py:") for s in r.source) for r in rows)
    np.testing.assert_allclose(fn(*args).numpy(), tf.jit(mlp_layer, backend="numpy")(*args).numpy(),
                               rtol=1e-5, atol=1e-5)   # profiling left the compiled function intact


def test_the_cost_model_fills_bytes_and_flops_where_a_kernel_carries_one(monkeypatch):
    fn = tf.jit(mlp_layer, backend="triton")
    args = _args()
    fn(*args)
    lowered = fn.entry_for(args, {})[0].runner.lowered
    kernel = lowered._default[0]

    class Estimate:
        bytes, flops = 4096, 2 * 8 * 16 * 24

    monkeypatch.setattr(kernel, "cost", Estimate(), raising=False)
    with tf.profile() as prof:
        fn(*args)
        fn(*args)
    row = next(r for r in prof.key_averages("kernel") if r.name.startswith(kernel.generated.name))
    assert (row.bytes, row.flops) == (2 * 4096, 2 * Estimate.flops)
    assert "12.29 k" in prof.table()                 # 12,288 FLOPs in the table's FLOPs column


def test_table_shows_the_top_rows_with_user_lines():
    fn = tf.jit(mlp_layer)
    args = _args()
    with tf.profile() as prof:
        fn(*args)
    text = prof.table(row_limit=3)
    assert "compiled functions" in text and "mlp_layer" in text
    assert "(3 of " in text and "test_profiler.py:" in text
    assert len([line for line in text.splitlines() if "(mlp_layer)" in line]) == 3


def test_chrome_trace_is_trace_event_format_with_nested_events(tmp_path):
    fn = tf.jit(mlp_layer)
    args = _args()
    with tf.profile() as prof:
        fn(*args)
        fn(*args)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(path)
    trace = json.loads(path.read_text())
    assert trace["displayTimeUnit"] == "ms" and isinstance(trace["traceEvents"], list)
    complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    metadata = [e for e in trace["traceEvents"] if e["ph"] == "M"]
    assert {e["args"]["name"] for e in metadata} == {"host", "gpu kernels"}
    for e in complete:
        assert set(e) >= {"name", "cat", "ph", "ts", "dur", "pid", "tid", "args"}
        assert isinstance(e["ts"], (int, float)) and e["dur"] >= 0 and isinstance(e["pid"], int)
    calls = [e for e in complete if e["cat"] == "function"]
    nodes = [e for e in complete if e["cat"] == "node"]
    assert len(calls) == 2 and len(nodes) == 2 * len(prof.key_averages("node"))
    for node in nodes:   # each node lies inside one call on the same thread: Perfetto nests them
        assert any(c["tid"] == node["tid"] and c["ts"] <= node["ts"] and
                   node["ts"] + node["dur"] <= c["ts"] + c["dur"] + 1e-3 for c in calls)
    assert all("source" in n["args"] and "bytes" in n["args"] for n in nodes)
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]


def test_a_compiled_training_step_is_profiled(tmp_path):
    model = tf.nn.Sequential(tf.nn.Linear(16, 8), tf.nn.ReLU(), tf.nn.Linear(8, 3))
    opt = tf.optim.SGD(model.parameters(), lr=0.1)

    @tf.jit
    def step(model, opt, x, y):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    x, y = tf.randn(4, 16), tf.randn(4, 3)
    step(model, opt, x, y)
    with tf.profile() as prof:
        step(model, opt, x, y)
    (function,) = prof.key_averages("function")
    assert function.name == "step" and function.calls == 1
    assert any(" matmul " in r.name for r in prof.key_averages("node"))
