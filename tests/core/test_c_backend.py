"""The c backend: generated C regions agree with the op table's NumPy meanings and with float64.

Every elementwise op the regions compute is run as a one-node region on its op-table samples and
on special values, against its NumPy meaning (exact for IEEE-exact arithmetic, selections,
comparisons and integers; within a few ulps of float64 for transcendentals). Whole graphs
(softmax, log_softmax, layer_norm and rms_norm forward and backward, cross_entropy with ignored
targets, GELU, SwiGLU, an AdamW update, reductions over rows, columns and everything) are
checked against torch float64, and each test asserts that its graph really ran as C regions.
Regions are compiled here at any size (MIN_REGION_ELEMENTS = 0), in a cache folder of this
module's own.
"""
from __future__ import annotations

import math
import os
import stat

import numpy as np
import pytest

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow import backends
from tritonflow import dtypes as D
from tritonflow.errors import TritonflowError, UnsupportedError
from tritonflow.interpreter import run_numpy
from tritonflow.ir.graph import Graph
from tritonflow.native import regions, toolchain
from tritonflow.native.backend import CRunner
from tritonflow.numpy_backend import NumpyRunner
from tritonflow.ops.registry import OPS

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(toolchain.compiler() is None, reason="no C compiler on this machine")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("c_libraries"))


@pytest.fixture(autouse=True)
def small_regions(monkeypatch, cache_dir):
    monkeypatch.setattr(regions, "MIN_REGION_ELEMENTS", 0)
    monkeypatch.setenv("TRITONFLOW_CACHE_DIR", cache_dir)


def runner_of(fn) -> CRunner:
    (entry,) = fn.entries.values()
    runner = entry.runner
    assert isinstance(runner, CRunner), type(runner)
    return runner


def ran_in_c(fn) -> None:
    """Every entry of `fn` (and its backward) compiled at least one region and ran it."""
    for entry in fn.entries.values():
        runners = [entry.runner] + [r for r in [getattr(entry, "backward_runner", None)] if r is not None]
        for runner in runners:
            assert isinstance(runner, CRunner), type(runner)
            assert runner.regions and runner.library is not None, runner.graph


# ---------------------------------------------------------------- one op at a time

def _one_node_graph(op_name: str, arrays: list, attrs: dict) -> Graph:
    op = OPS[op_name]
    from tritonflow.ir.types import TensorType
    graph = Graph(f"one_{op_name}")
    inputs = [graph.add_input(f"x{i}", TensorType(a.shape, D.from_numpy_dtype(a.dtype))) for i, a in enumerate(arrays)]
    out_type = op.infer([i.type for i in inputs], attrs)
    node = graph.add(op_name, inputs, attrs, out_type)
    # A cast to its own dtype after it (the same values): a region of one cheap op is left to NumPy.
    graph.outputs = [graph.add("cast", [node], {"dtype": out_type.dtype}, out_type)]
    return graph


_EXACT_FLOAT = {"add", "sub", "mul", "div", "neg", "abs", "relu", "floor", "ceil", "round", "sign", "reciprocal",
                "maximum", "minimum", "where", "cast", "sqrt", "rsqrt"}
_SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 3e38, -3e38, 88.5, -88.5, 100.0, -100.0,
                     0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 7.0])


def _samples(op, dtype):
    out = []
    for arrays, attrs in op.samples(dtype):
        space = regions.space_of(tuple(np.broadcast_shapes(*[a.shape for a in arrays])))
        if space is not None:
            out.append((arrays, attrs))
    if dtype.is_floating_point and op.name in regions.ELEMENTWISE and len(op.samples(dtype)[0][0]) == 1 \
            and op.name != "cast":
        out.append(([np.tile(_SPECIAL, (3, 1)).astype(dtype.np)], {}))
    return out


CASES = [(name, dtype.name) for name in sorted(regions.ELEMENTWISE) for dtype in D.ALL_DTYPES
         if dtype.name in regions.SUPPORTED_DTYPES and OPS[name].samples is not None
         and (not OPS[name].dtypes or dtype.name in OPS[name].dtypes) and OPS[name].samples(dtype)
         and not (name == "pow" and not dtype.is_floating_point)]


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_powers_and_float_to_integer_casts_stay_numpy_steps(dtype):
    a = np.array([[3, 0, -2, 5, 1]], dtype=dtype)
    b = np.array([[2, 3, -1, 0, -4]], dtype=dtype)
    assert not CRunner(_one_node_graph("pow", [a, b], {})).regions
    x = np.array([[np.nan, 1e30, -2.5, 3.5]], dtype=np.float32)
    assert not CRunner(_one_node_graph("cast", [x], {"dtype": D.as_dtype(dtype)})).regions


def _ulps(got: np.ndarray, want64: np.ndarray, dtype) -> np.ndarray:
    spacing = np.spacing(np.abs(want64).astype(dtype)).astype(np.float64)
    tiny = np.finfo(dtype).tiny * np.finfo(dtype).eps
    return np.abs(got.astype(np.float64) - want64) / np.maximum(spacing, tiny)


@pytest.mark.parametrize("name,dtype", CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_each_elementwise_op_matches_its_numpy_meaning(name, dtype):
    op = OPS[name]
    samples = _samples(op, D.as_dtype(dtype))
    compiled = 0
    for arrays, attrs in samples:
        graph = _one_node_graph(name, arrays, attrs)
        runner = CRunner(graph)
        if not runner.regions:
            # Only broadcasts a rows x columns loop cannot express stay on NumPy: (2,1,3) with (1,4,1).
            assert len({a.shape for a in arrays if a.ndim}) > 1, (name, dtype, [a.shape for a in arrays])
            continue
        compiled += 1
        (got,) = runner(arrays)
        want = run_numpy(op, arrays, attrs, graph.outputs[0].type)
        assert got.dtype == want.dtype and got.shape == want.shape
        if got.dtype.kind != "f" or name in _EXACT_FLOAT:
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {dtype} {[a.shape for a in arrays]}")
            continue
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{name} {dtype}: NaN positions")
        finite = np.isfinite(want)
        np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
        with np.errstate(all="ignore"):
            exact = run_numpy(op, [a.astype(np.float64) for a in arrays], attrs,
                              graph.outputs[0].type.__class__(graph.outputs[0].shape, D.float64))
        ok = finite & np.isfinite(exact)
        ulps = _ulps(got[ok], exact[ok], got.dtype)
        # The c backend's transcendentals: within 4 ulps of float64 (test_transcendentals_on_dense_grids).
        assert ulps.max(initial=0.0) <= 4.0, (name, dtype, float(ulps.max()), arrays[0].ravel()[ok.ravel()][ulps.argmax()])
    assert compiled >= 2, f"{name} {dtype}: {compiled} of {len(samples)} samples became regions"


_GRIDS = {"exp": (-87, 88), "exp2": (-120, 120), "expm1": (-20, 20), "tanh": (-12, 12), "sigmoid": (-100, 100),
          "sin": (-100, 100), "cos": (-100, 100), "erf": (-6, 6), "log": "positive", "log2": "positive",
          "log1p": "above -1"}


@pytest.mark.parametrize("name", sorted(_GRIDS))
def test_transcendentals_on_dense_grids(name):
    """libmvec's vector forms (and our sigmoid from expf) within 4 ulps of the float64 value in
    float32 over 200,001 points; NumPy's own float32 exp and log are within 2.3-2.5 ulps here."""
    grid = _GRIDS[name]
    if grid == "positive":
        x = np.geomspace(1e-37, 1e37, 200001)
    elif grid == "above -1":
        x = np.geomspace(1e-30, 1e30, 200001) - 0.5
    else:
        x = np.linspace(*grid, 200001)
    x = x.astype(np.float32).reshape(1, -1)
    (got,) = CRunner(_one_node_graph(name, [x], {}))([x])
    with np.errstate(all="ignore"):
        wide = x.astype(np.float64)
        exact = {"exp": np.exp, "exp2": np.exp2, "expm1": np.expm1, "tanh": np.tanh, "sin": np.sin, "cos": np.cos,
                 "log": np.log, "log2": np.log2, "log1p": np.log1p, "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
                 "erf": np.vectorize(math.erf)}[name](wide)
    ok = np.isfinite(exact)
    ulps = _ulps(got[ok], exact[ok], np.float32)
    assert ulps.max() <= 4.0, (name, float(ulps.max()), float(x[ok].ravel()[ulps.argmax()]))


def test_erf_float32_is_correctly_rounded():
    x = np.linspace(-6, 6, 6000, dtype=np.float32).reshape(3, -1)
    graph = _one_node_graph("erf", [x], {})
    (got,) = CRunner(graph)([x])
    import mpmath as mp
    want = np.array([float(mp.erf(mp.mpf(float(v)))) for v in x.ravel()]).astype(np.float32).reshape(x.shape)
    np.testing.assert_array_equal(got, want)   # erf in double, rounded once: every point exact


def test_integer_arithmetic_wraps_like_numpy():
    a = np.array([[2 ** 31 - 1, -2 ** 31, 7, -7]], dtype=np.int32)
    b = np.array([[1, -1, 2 ** 31 - 1, 3]], dtype=np.int32)
    for name in ("add", "sub", "mul", "maximum", "minimum"):
        graph = _one_node_graph(name, [a, b], {})
        (got,) = CRunner(graph)([a, b])
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(got, run_numpy(OPS[name], [a, b], {}, graph.outputs[0].type), err_msg=name)


# ---------------------------------------------------------------- whole graphs against torch float64

def _torch64(fn, *arrays):
    tensors = [torch.from_numpy(np.asarray(a, dtype=np.float64) if a.dtype.kind == "f" else a) for a in arrays]
    return fn(*tensors)


def _close(got, want, rtol=2e-5, atol=2e-6):
    got = np.asarray(got.detach().numpy() if hasattr(got, "detach") else got, dtype=np.float64)
    want = np.asarray(want.detach().numpy() if hasattr(want, "detach") else want, dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1.0, float(np.abs(want).max(initial=0.0))))


@pytest.mark.parametrize("shape", [(37, 53), (4, 9, 130)])
def test_softmax_and_log_softmax(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 4
    for ours, theirs in ((F.softmax, torch.softmax), (F.log_softmax, torch.log_softmax)):
        fn = tf.jit(lambda t: ours(t, dim=-1), backend="c")
        got = fn(tf.tensor(x))
        ran_in_c(fn)
        _close(got, _torch64(lambda t: theirs(t, -1), x))


def test_softmax_special_rows_match_the_numpy_backend():
    x = np.random.default_rng(1).standard_normal((6, 40)).astype(np.float32)
    x[0, 3] = np.nan
    x[1, 5] = np.inf
    x[2, :] = -np.inf
    x[3, 7] = -np.inf
    x[4, :] = 1e30
    fn_c = tf.jit(lambda t: F.softmax(t, dim=1), backend="c")
    fn_np = tf.jit(lambda t: F.softmax(t, dim=1), backend="numpy")
    got, want = fn_c(tf.tensor(x)).numpy(), fn_np(tf.tensor(x)).numpy()
    ran_in_c(fn_c)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rms", [False, True])
def test_norms_forward_and_backward(rms):
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((48, 96)), rng.standard_normal(96), rng.standard_normal(96)
    g = rng.standard_normal((48, 96))

    def ours(x, w, b):
        y = F.rms_norm(x, (96,), w) if rms else F.layer_norm(x, (96,), w, b)
        return (y * tf.tensor(g.astype(np.float32))).sum()

    fn = tf.jit(ours, backend="c")
    tensors = [tf.tensor(a.astype(np.float32), requires_grad=True) for a in (x, w, b)]
    loss = fn(*tensors)
    loss.backward()
    ran_in_c(fn)
    refs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = torch.nn.functional.rms_norm(refs[0], (96,), refs[1]) if rms else \
        torch.nn.functional.layer_norm(refs[0], (96,), refs[1], refs[2])
    ref_loss = (y * torch.from_numpy(g)).sum()
    ref_loss.backward()
    _close(loss, ref_loss, rtol=1e-4)
    for ours_t, ref in zip(tensors, refs):
        if ref.grad is None:
            assert ours_t.grad is None or not np.any(ours_t.grad.numpy())
            continue
        _close(ours_t.grad, ref.grad, rtol=1e-4, atol=1e-5)


def test_cross_entropy_forward_and_backward_with_ignored_targets():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((64, 301)).astype(np.float32) * 3
    target = rng.integers(0, 301, size=64)
    target[::7] = -100
    fn = tf.jit(lambda z, t: F.cross_entropy(z, t), backend="c")
    z = tf.tensor(logits, requires_grad=True)
    loss = fn(z, tf.tensor(target))
    loss.backward()
    ran_in_c(fn)
    zr = torch.tensor(logits.astype(np.float64), requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zr, torch.from_numpy(target))
    ref.backward()
    _close(loss, ref, rtol=1e-5)
    _close(z.grad, zr.grad, rtol=1e-4, atol=1e-6)


def test_gather_out_of_range_raises_the_ops_own_error():
    logits = np.zeros((8, 10), dtype=np.float32)
    fn = tf.jit(lambda z, t: F.cross_entropy(z, t), backend="c")
    with pytest.raises(TritonflowError) as caught:
        fn(tf.tensor(logits), tf.tensor(np.array([0, 1, 2, 3, 4, 5, 6, 10])))
    assert "gather" in str(caught.value) and "test_c_backend.py" in str(caught.value)


def test_gather_takes_negative_positions_from_the_end():
    x = np.arange(40, dtype=np.float32).reshape(4, 10)
    index = np.array([[-1], [0], [-10], [9]])
    fn = tf.jit(lambda a, i: tf.gather(a * 2.0, 1, i), backend="c")
    got = fn(tf.tensor(x), tf.tensor(index)).numpy()
    ran_in_c(fn)
    np.testing.assert_array_equal(got, np.take_along_axis(x * 2, index % 10, axis=1))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_and_swiglu(approximate):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((33, 70)).astype(np.float32) * 3, rng.standard_normal((33, 70)).astype(np.float32)
    fn = tf.jit(lambda x, y: F.gelu(x, approximate=approximate) + F.silu(x) * y, backend="c")
    got = fn(tf.tensor(a), tf.tensor(b))
    ran_in_c(fn)
    _close(got, _torch64(lambda x, y: torch.nn.functional.gelu(x, approximate=approximate)
                         + torch.nn.functional.silu(x) * y, a, b))


def test_adamw_style_update_of_a_flat_tensor():
    rng = np.random.default_rng(5)
    p, g, m = (rng.standard_normal(5000).astype(np.float32) for _ in range(3))
    v = np.abs(rng.standard_normal(5000)).astype(np.float32)

    def step(p, g, m, v):
        m2 = m * 0.9 + g * 0.1
        v2 = v * 0.999 + g * g * 0.001
        return p * (1 - 1e-3 * 0.01) - 1e-3 * (m2 / 0.5) / ((v2 / 0.25).sqrt() + 1e-8), m2, v2

    fn = tf.jit(step, backend="c")
    got = fn(*[tf.tensor(a) for a in (p, g, m, v)])
    ran_in_c(fn)
    want = _torch64(step, p, g, m, v)
    for o, w in zip(got, want):
        _close(o, w)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_reductions_over_rows_columns_and_everything(dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 20, 17)) * 5
    x = (x > 0) if dtype == "bool" else x.astype(dtype)

    def fn(t):
        cols = t.sum(dim=(0, 1))
        return t.sum(dim=2), t.amax(dim=2), t.amin(dim=(0, 1)), t.sum(), t.amax(), cols

    jitted = tf.jit(fn, backend="c")
    got = jitted(tf.tensor(x))
    ran_in_c(jitted)
    wide = x.astype(np.float64) if dtype != "bool" else x
    want = (wide.sum(2), wide.max(2), wide.min((0, 1)), wide.sum(), wide.max(), wide.sum((0, 1)))
    for o, w in zip(got, want):
        o = o.numpy()
        assert o.shape == np.shape(w)
        if dtype in ("int64", "bool"):
            np.testing.assert_array_equal(o, w)
        else:
            np.testing.assert_allclose(o, w, rtol=1e-6 if dtype == "float32" else 1e-13, atol=1e-5)


def test_max_reductions_keep_nan_and_infinities():
    x = np.random.default_rng(7).standard_normal((5, 30)).astype(np.float32)
    x[1, 4], x[2, 0], x[3, 29] = np.nan, np.inf, -np.inf
    fn = tf.jit(lambda t: (t.amax(dim=1), t.amin(dim=1), t.amax(dim=0), t.amax()), backend="c")
    got = [o.numpy() for o in fn(tf.tensor(x))]
    ran_in_c(fn)
    want = [x.max(1), x.min(1), x.max(0), x.max()]
    for o, w in zip(got, want):
        np.testing.assert_array_equal(o, w)


def test_values_after_the_rows_read_the_row_accumulations():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((50, 40)).astype(np.float32), rng.standard_normal(40).astype(np.float32)
    fn = tf.jit(lambda t, v: ((t * v).sum(dim=0) / 50.0 + v, (t * t).sum() * 0.5), backend="c")
    got = fn(tf.tensor(x), tf.tensor(w))
    ran_in_c(fn)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    _close(got[0], (x64 * w64).sum(0) / 50.0 + w64)
    _close(got[1], (x64 * x64).sum() * 0.5)


def test_a_division_by_column_sums_needs_the_sums_first():
    """x / x.sum(0) reads every row's sum in every row: the division is a NumPy step after the
    sums, and the sums alone (one NumPy pass) are not compiled."""
    x = np.abs(np.random.default_rng(8).standard_normal((50, 40))).astype(np.float32) + 0.1
    fn = tf.jit(lambda t: t / t.sum(dim=0), backend="c")
    got = fn(tf.tensor(x))
    (entry,) = fn.entries.values()
    assert isinstance(entry.runner, NumpyRunner)
    _close(got, x.astype(np.float64) / x.astype(np.float64).sum(0))


# ---------------------------------------------------------------- the backend around the regions

def test_small_graphs_stay_on_numpy_at_the_default_threshold(monkeypatch):
    monkeypatch.setattr(regions, "MIN_REGION_ELEMENTS", 1 << 17)
    fn = tf.jit(lambda t: F.softmax(t, dim=1), backend="c")
    fn(tf.tensor(np.ones((4, 8), dtype=np.float32)))
    (entry,) = fn.entries.values()
    assert isinstance(entry.runner, NumpyRunner)   # the numpy backend's runner itself


def test_the_default_cpu_backend(monkeypatch):
    monkeypatch.delenv("TRITONFLOW_CPU_BACKEND", raising=False)
    assert backends.default_backend("cpu") == "c"
    assert backends.default_backend("cuda") == "triton"
    monkeypatch.setenv("TRITONFLOW_CPU_BACKEND", "numpy")
    assert backends.default_backend("cpu") == "numpy"
    fn = tf.jit(lambda t: t * 2)
    fn(tf.tensor(np.ones(3, dtype=np.float32)))
    (entry,) = fn.entries.values()
    assert entry.backend == "numpy"
    monkeypatch.setenv("TRITONFLOW_CPU_BACKEND", "fortran")
    with pytest.raises(UnsupportedError, match="fortran"):
        backends.default_backend("cpu")


def test_a_second_process_loads_the_library_without_compiling(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONFLOW_CACHE_DIR", str(tmp_path))
    x = np.random.default_rng(9).standard_normal((16, 33)).astype(np.float32)
    before = toolchain.compiled_count()
    graph, out_first = _softmax_graph(x)
    assert toolchain.compiled_count() == before + 1
    folder = os.path.join(str(tmp_path), "c")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert len([f for f in os.listdir(folder) if f.endswith(".so")]) == 1
    toolchain._loaded.clear()   # as a new process finds it: on disk only
    out_second = CRunner(graph)([x])[0]
    assert toolchain.compiled_count() == before + 1
    np.testing.assert_array_equal(out_first, out_second)


def _softmax_graph(x: np.ndarray) -> tuple:
    fn = tf.jit(lambda t: F.softmax(t * 3.0, dim=1), backend="c")
    out = fn(tf.tensor(x)).numpy()
    return runner_of(fn).graph, out


def test_a_broken_compiler_falls_back_to_numpy_with_a_warning(tmp_path, monkeypatch):
    script = tmp_path / "broken-cc"
    script.write_text("#!/bin/sh\necho 'broken-cc: cannot compile' >&2\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setenv("TRITONFLOW_CC", str(script))
    monkeypatch.setenv("TRITONFLOW_CACHE_DIR", str(tmp_path / "cache"))
    toolchain.compiler.cache_clear()
    toolchain._compiler_identity.cache_clear()
    try:
        x = np.random.default_rng(10).standard_normal((8, 12)).astype(np.float32)
        fn = tf.jit(lambda t: F.softmax(t, dim=1), backend="c")
        with pytest.warns(RuntimeWarning, match="broken-cc"):
            got = fn(tf.tensor(x)).numpy()
        want = tf.jit(lambda t: F.softmax(t, dim=1), backend="numpy")(tf.tensor(x)).numpy()
        np.testing.assert_array_equal(got, want)
    finally:
        toolchain.compiler.cache_clear()
        toolchain._compiler_identity.cache_clear()


def test_a_tritonflow_cc_that_names_no_executable_is_an_error(monkeypatch):
    monkeypatch.setenv("TRITONFLOW_CC", "/no/such/cc")
    monkeypatch.delenv("TRITONFLOW_CPU_BACKEND", raising=False)
    toolchain.compiler.cache_clear()
    try:
        with pytest.raises(UnsupportedError, match=r"TRITONFLOW_CC='/no/such/cc': no such executable"):
            tf.jit(lambda t: t * 2.0)(tf.tensor(np.ones(3, dtype=np.float32)))
        monkeypatch.delenv("TRITONFLOW_CC")
        monkeypatch.setenv("CC", "/no/such/cc")   # CC is other tools' too: gcc, cc or clang instead
        toolchain.compiler.cache_clear()
        assert toolchain.compiler() is not None
    finally:
        toolchain.compiler.cache_clear()


def test_the_backend_recomputes_elementwise_values_in_the_backward():
    backend = backends.get("c")
    assert backend.recomputes(OPS["exp"]) and backend.recomputes(OPS["reshape"])
    assert not backend.recomputes(OPS["reduce_sum"]) and not backend.recomputes(OPS["matmul"])


def test_the_generated_source_is_plain_vectorisable_c():
    x = np.ones((8, 64), dtype=np.float32)
    fn = tf.jit(lambda t: F.softmax(t, dim=1), backend="c")
    fn(tf.tensor(x))
    source = runner_of(fn).source
    assert "#pragma omp simd reduction(max:" in source and "expf(" in source
    assert "int tf_region_0(void** args, int64_t R, int64_t C)" in source


def test_explain_shows_each_region_with_its_c_and_ir_nodes():
    x = tf.tensor(np.ones((8, 64), dtype=np.float32))
    fn = tf.jit(lambda t: F.softmax(t, dim=1), backend="c")
    text = str(tf.explain(fn, x))
    assert "kernel tf_region_0 (c region)" in text and "#pragma omp simd" in text
    assert "reduce_max" in text and "test_c_backend.py" in text   # the IR nodes, with the user's line
