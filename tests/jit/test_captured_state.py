"""jit over captured state (issue 15): tensors a jitted function reaches from outside its arguments.

Globals, closure cells and the attributes of captured modules are read at every call and, when
the function writes them in place, written back after it, as the same code does eagerly. One
tensor reached by two names is one graph value. Guards: identity (a rebound attribute retraces),
shape, dtype, requires_grad, a module's training flag. Graph inputs and guards are named after
where the tensors live. Writes that cannot be honoured are clear errors naming the tensor and the
user's line. A jitted function may return NumPy arrays and Python values.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonflow as tf
from tritonflow import nn
import tritonflow.nn.functional as F
from tests.helpers import assert_close

COUNTER = tf.zeros(())
SHARED = tf.ones(4)
SHARED_LIST = [SHARED]
BUFFER = tf.zeros(3)


class RunningMean(nn.Module):
    """A layer with a buffer it updates in forward, as a batch-norm's running statistics."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n, n)
        self.register_buffer("mean", tf.zeros(n))
        self.register_buffer("count", tf.zeros((), dtype="int64"))

    def forward(self, x):
        h = self.fc(x)
        with tf.no_grad():
            self.mean.mul_(0.9).add_(h.mean(0) * 0.1)
            self.count.add_(1)
        return h - self.mean


def test_closure_and_global_state_written_back_as_eager(backend):
    state = tf.zeros(3)

    def f(x):
        state.add_(x)            # a closure cell
        COUNTER.add_(1)          # a global
        return state * COUNTER

    jitted = tf.jit(f, backend=backend)
    start = COUNTER.numpy().copy()
    ref_state, ref_count = np.zeros(3), float(start)
    try:
        rng = np.random.default_rng(0)
        for _ in range(3):
            a = rng.standard_normal(3).astype(np.float32)
            ref_state, ref_count = ref_state + a, ref_count + 1
            assert_close(jitted(tf.tensor(a)), ref_state * ref_count, tf.float32)
        assert_close(state, ref_state, tf.float32)
        assert float(COUNTER) == ref_count
        assert jitted.cache_info() == (2, 1, 1)
        names = [n.name for n in tf.explain(jitted, tf.tensor(a)).final_graph.inputs]
        assert names == ["x", "state", "COUNTER"]
    finally:
        COUNTER.copy_(tf.tensor(start))


def test_one_tensor_reached_by_two_names_is_one_graph_value(backend):
    before = SHARED.numpy().copy()

    @tf.jit(backend=backend)
    def f(x):
        SHARED_LIST[0].add_(x)      # the same object as SHARED
        return SHARED * 2

    try:
        got = f(tf.ones(4))
        assert_close(got, (before + 1) * 2, tf.float32)
        assert_close(SHARED, before + 1, tf.float32)
        graph = next(iter(f.entries.values())).graph
        assert [n.name for n in graph.inputs] == ["x", "SHARED"]   # one input, named by the shortest path
    finally:
        SHARED.copy_(tf.tensor(before))


def test_a_tensor_passed_and_captured_is_the_argument(backend):
    # `weights` is both an argument and reachable through the global list: one graph value, so the
    # in-place write made through the list is seen by the argument and written back once.
    weights = tf.tensor(np.arange(3, dtype=np.float32))
    holder = [weights]

    @tf.jit(backend=backend)
    def f(w):
        holder[0].mul_(2.0)
        return w + 1

    got = f(weights)
    assert_close(got, np.arange(3) * 2.0 + 1, tf.float32)
    assert_close(weights, np.arange(3) * 2.0, tf.float32)
    assert [n.name for n in next(iter(f.entries.values())).graph.inputs] == ["w"]


def test_module_buffers_updated_in_forward_are_written_back(backend):
    tf.manual_seed(0)
    model = RunningMean(4)
    reference = RunningMean(4)
    reference.load_state_dict(model.state_dict())
    forward = tf.jit(lambda x: model(x), backend=backend)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = tf.tensor(rng.standard_normal((5, 4)), dtype="float32")
        assert_close(forward(x), reference(x).detach(), tf.float32, rtol_scale=4)
    assert_close(model.mean, reference.mean, tf.float32, rtol_scale=4)
    assert int(model.count) == 3 and forward.cache_info().misses == 1


def test_rebinding_a_captured_parameter_retraces():
    tf.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))
    f = tf.jit(lambda x: model(x))
    x = tf.ones((1, 3))
    f(x)
    model[0].weight = nn.Parameter(tf.zeros((2, 3)))
    assert_close(f(x).detach(), model[0].bias.detach().numpy()[None], tf.float32)
    assert f.recompile_reasons == ["captured model.0.weight is now a different Parameter object (rebound)"]
    assert f.cache_info().entries == 1          # the stale graph is dropped, not kept beside


def test_dtype_and_shape_of_captured_state_are_guarded():
    table = {"w": tf.ones(3)}
    f = tf.jit(lambda x: x * table["w"])
    f(tf.ones(3, dtype="float64"))
    table["w"] = tf.full((3,), 2.0)                  # another object at the same key
    assert_close(f(tf.ones(3, dtype="float64")), np.full(3, 2.0), tf.float64)
    assert f.recompile_reasons == ["captured table.w is now a different Tensor object (rebound)"]
    model = nn.Linear(3, 1)
    g = tf.jit(lambda x: model.weight.sum() + x)
    x = tf.ones((), dtype="float64")
    g(x)
    model.double()                                   # same objects, new dtype
    assert g(x).dtype is tf.float64
    assert g.recompile_reasons == ["captured model.weight: dtype changed from float32 to float64"]
    scale = tf.ones(3)
    h = tf.jit(lambda x: scale.sum() + x)
    h(x)
    scale.resize_(2, 3)                              # same object, new shape (eagerly)
    assert_close(h(x), np.float64(4.0), tf.float64)
    assert h.recompile_reasons == ["captured scale: shape changed from (3) to (2, 3)"]


def test_training_flag_of_a_captured_module_is_guarded(backend):
    tf.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    f = tf.jit(lambda x: model(x), backend=backend)
    x = tf.ones((3, 4))
    f(x)
    model.eval()
    assert_close(f(x).detach(), model(x).detach(), tf.float32)   # no dropout: equals the eager eval forward
    assert f.recompile_reasons == ["model.training changed from True to False"]


def test_explain_names_inputs_and_guards_after_what_they_are():
    tf.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    opt = tf.optim.Adam(model.parameters(), lr=1e-2)

    def step(x, y):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()

    x, y = tf.ones((2, 4)), tf.zeros((2, 2))
    e = tf.explain(tf.jit(step), x, y)
    names = [n.name for n in e.final_graph.inputs]
    assert {"model.0.weight", "model.2.bias", "opt.state.0.exp_avg", "opt.state.3.exp_avg_sq",
            "opt.param_groups.0.lr"} <= set(names)
    assert not any(n.startswith(("c", "tensors_")) and n[1:2].isdigit() for n in names)
    assert "%model.0.weight: f32[3,4]" in e.passes[0][1]
    assert any(g.startswith("captured %opt.state.0.exp_avg: the same tensor object") for g in e.guards)
    assert "model.0.training == True" in e.guards
    # A model and optimizer passed as arguments, and a compiled module, are named the same way.
    passed = tf.explain(tf.jit(lambda model, opt, x: model(x)), model, opt, x)
    assert [n.name for n in passed.final_graph.inputs][:2] == ["model.0.weight", "model.0.bias"]
    assert "opt.state.0.exp_avg" in [n.name for n in passed.final_graph.inputs]
    compiled = tf.explain(tf.compile(model), x)
    assert [n.name for n in compiled.final_graph.inputs][:2] == ["model.0.weight", "model.0.bias"]
    assert compiled.guards[0].startswith("tensor argument 0 (%model.0.weight): shape (3, 4)")


CACHED = nn.Linear(3, 3)
CACHED.register_buffer("cache", tf.zeros(3))


def resize_captured(x):
    CACHED.cache.resize_(6)
    return x


def rebind_captured(x):
    CACHED.cache = x * 2
    return x


def differentiable_write(x):
    CACHED.cache.copy_(CACHED(x))          # grad mode on, the value requires grad
    return x


def read_after_write(x):
    return x * float(BUFFER.add_(x).numpy().sum())


@pytest.mark.parametrize("fn, error, pattern", [
    (resize_captured, tf.TraceError,
     r"^resize_: captured tensor %CACHED\.cache would change shape from \(3,\) to \(6,\)"),
    (rebind_captured, tf.TraceError, r"^jit: CACHED\.cache is rebound to a value computed inside the jitted"),
    (differentiable_write, tf.TraceError, r"wrote a value that requires grad into captured tensor %CACHED\.cache"),
    (read_after_write, tf.TraceError,
     r"^\.numpy\(\) needs a concrete value, but the jitted function wrote captured tensor %BUFFER in place"),
], ids=["resize", "rebind", "differentiable_write", "read_after_write"])
def test_writes_that_cannot_be_honoured_name_the_tensor_and_the_line(fn, error, pattern):
    line = fn.__code__.co_firstlineno + 1
    with pytest.raises(error, match=rf"(?s){pattern}.*test_captured_state\.py:{line} in {fn.__name__}"):
        tf.jit(fn)(tf.ones(3))
    assert np.array_equal(BUFFER.numpy(), np.zeros(3, np.float32))   # nothing was written
    assert np.array_equal(CACHED.cache.numpy(), np.zeros(3, np.float32))


def test_resize_matches_torch_on_the_elements_it_keeps():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    for shape in [(3, 2), (4,), (2, 4)]:
        ours, theirs = tf.tensor(a), torch.tensor(a)
        ours.resize_(shape)
        theirs.resize_(shape)
        kept = min(6, int(np.prod(shape)))
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.numpy().reshape(-1)[:kept], theirs.numpy().reshape(-1)[:kept])
        np.testing.assert_array_equal(ours.numpy().reshape(-1)[kept:], 0)  # torch leaves them uninitialised

    @tf.jit
    def local(x):
        y = x * 1.0
        y.resize_(2, 2)                      # an intermediate: an ordinary traced value
        return y

    assert_close(local(tf.tensor(a[0])), np.array([[0, 1], [2, 0]]), tf.float32)
    with pytest.raises(tf.AutogradError, match="requires grad"):
        tf.ones(3, requires_grad=True).resize_(2)


def test_a_helper_function_reaching_a_global_model_is_named_through_it(backend):
    tf.manual_seed(0)
    globals()["HELPER_MODEL"] = nn.Linear(3, 2)
    try:
        f = tf.jit(lambda x: _helper(x) * 2, backend=backend)
        x = tf.ones((1, 3))
        assert_close(f(x).detach(), HELPER_MODEL(x).detach() * 2, tf.float32)  # noqa: F821
        assert [n.name for n in next(iter(f.entries.values())).graph.inputs][1:] == \
            ["HELPER_MODEL.weight", "HELPER_MODEL.bias"]
    finally:
        del globals()["HELPER_MODEL"]


def _helper(x):
    return HELPER_MODEL(x)  # noqa: F821


def test_a_captured_tensor_read_through_an_alias_is_read_at_each_call(backend):
    # detach() (and the aliases contiguous() or a backward rule make) of a captured tensor stand
    # for its graph value: a later eager update is seen, not the storage read while tracing.
    weight = tf.ones((2, 2))
    f = tf.jit(lambda x: x @ weight.detach() + weight.contiguous(), backend=backend)
    x = tf.ones((1, 2))
    assert_close(f(x), np.full((2, 2), 3.0), tf.float32)
    weight.mul_(2.0)
    assert_close(f(x), np.full((2, 2), 6.0), tf.float32)
    assert f.cache_info().misses == 1 and len(next(iter(f.entries.values())).graph.inputs) == 2


def test_a_captured_index_tensor_used_twice(backend):
    index = tf.tensor([2, 0])
    f = tf.jit(lambda x: x[index] + x[index], backend=backend)
    assert_close(f(tf.tensor([1.0, 2.0, 3.0])), np.array([6.0, 2.0]), tf.float32)


def test_a_compiled_entry_keeps_neither_trace_time_gradients_nor_arguments():
    import gc
    import weakref
    w = tf.ones(3, requires_grad=True)
    w.grad = tf.ones(3)
    f = tf.jit(lambda x: x + w.grad * 2)
    x = tf.ones(3)
    grad_ref, x_ref = weakref.ref(w.grad), weakref.ref(x)
    assert_close(f(x), np.full(3, 3.0), tf.float32)
    w.grad = tf.zeros(3)              # the next call reads the new gradient as w.grad
    del x
    gc.collect()
    assert grad_ref() is None and x_ref() is None
    assert_close(f(tf.ones(3)), np.ones(3), tf.float32)
    assert f.cache_info().misses == 1


# ---------------------------------------------------------------- what a jitted function returns

def test_numpy_arrays_and_python_values_are_returned_as_they_are(backend):
    table = np.arange(4.0)

    @tf.jit(backend=backend)
    def f(x):
        return x * 2, table * 3, 2.5, "done", None

    for _ in range(2):
        y, arr, number, text, nothing = f(tf.ones(2))
        assert_close(y, np.full(2, 2.0), tf.float32)
        np.testing.assert_array_equal(arr, np.arange(4.0) * 3)
        assert (number, text, nothing) == (2.5, "done", None)
        arr[:] = -1                           # the caller's copy: the next call is unaffected
    assert f.cache_info() == (1, 1, 1)


def test_returning_something_jit_cannot_hand_back_is_a_clear_error():
    class Holder:
        def __init__(self, t):
            self.t = t

    with pytest.raises(tf.UnsupportedError, match=r"^jit: the function returned a Holder holding a tensor \(t\)"):
        tf.jit(lambda x: Holder(x * 2))(tf.ones(2))
    with pytest.raises(tf.UnsupportedError, match=r"^jit: the function returned a generator"):
        tf.jit(lambda x: (v for v in (x,)))(tf.ones(2))
    with pytest.raises(tf.UnsupportedError) as info:
        tf.jit(lambda x: {x * 1})(tf.ones(2))
    assert "argument" not in str(info.value)
