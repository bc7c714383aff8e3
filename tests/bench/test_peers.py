"""tritonflow bench's peer runner (benchmarks/peers.py) and report (benchmarks/report.py): the
float64 check catches a wrong provider and names the workload, errors are measured relative to
the reference, and the report's ratios, geomeans and target verdicts follow from given times.
No assertion here is about a measured time."""
import json
import math

import numpy as np
import pytest

from tritonflow.benchmarks import peers, report
from tritonflow.benchmarks.peers import Mismatch, ProviderResult, WorkloadResult
from tritonflow.benchmarks.workloads import TRITONFLOW, Workload, by_name
from tritonflow.aot import TensorSpec


def test_compare_measures_error_relative_to_the_reference():
    want = [np.array([1.0, -4.0, 2.0])]
    got = [np.array([1.0, -4.0, 2.0 + 4e-5])]
    assert peers.compare("p", "w", got, want, 2e-5) == pytest.approx(1e-5)
    with pytest.raises(Mismatch, match=r"^w: p differs from the float64 reference by 0.001 .*tolerance 0.0001"):
        peers.compare("p", "w", [np.array([1.0, -4.0, 2.004])], want, 1e-4)
    with pytest.raises(Mismatch, match="w: p result 0 has shape"):
        peers.compare("p", "w", [np.zeros(2)], want, 1.0)
    with pytest.raises(Mismatch, match="inf or NaN"):
        peers.compare("p", "w", [np.array([1.0, np.nan, 2.0])], want, 1.0)
    with pytest.raises(Mismatch, match="returned 2 results, the reference 1"):
        peers.compare("p", "w", want * 2, want, 1.0)


def _off_by_one_percent(size, api):
    """tritonflow's form is wrong by 1%: the torch float64 reference must catch it."""
    if api is TRITONFLOW:
        return (lambda a: a * 2.02), [TensorSpec((64,), "float32")]
    return (lambda a: a * 2.0), [TensorSpec((64,), "float32")]


def test_a_provider_disagreeing_with_float64_fails_naming_the_workload():
    wrong = Workload("doubling, wrong", _off_by_one_percent, key="doubling")
    with pytest.raises(Mismatch, match=r"^doubling 64 f32: tritonflow eager differs from the float64 reference"):
        peers.measure(wrong, "tiny", quick=True, repeats=1)


def test_forward_backward_workload_checks_gradients_of_every_provider():
    result = peers.measure(by_name("rms_norm_bwd"), "tiny", quick=True, repeats=1,
                           providers=("tritonflow eager", "tritonflow compiled", "torch eager"))
    assert result.providers["torch.compile"].unavailable == "not chosen"
    for name in ("tritonflow eager", "tritonflow compiled", "torch eager"):
        entry = result.providers[name]
        assert entry.unavailable is None and entry.max_error is not None \
            and entry.max_error < peers.TOLERANCE["bfloat16"]  # tiny sizes keep bfloat16
        assert entry.seconds > 0 and entry.wall_seconds > 0
    assert result.providers["tritonflow compiled"].compile_seconds >= 0
    assert result.providers["tritonflow eager"].peak_bytes > 0 and result.providers["torch eager"].peak_bytes is None



def _sgd_step(lr: float):
    """A training step (Workload.trains): least squares on w, backward, w -= lr * grad in place."""
    def build(size, api):
        def step(w, x, y):
            loss = ((x @ w - y) ** 2).mean()
            loss.backward()
            with api.lib.no_grad():
                w.copy_(w - lr * w.grad)
            return loss.detach()
        return step, [TensorSpec((6, 3), "float32", requires_grad=True), TensorSpec((8, 6), "float32"),
                      TensorSpec((8, 3), "float32")]
    return build


def _sgd_wrong_for_tritonflow(size, api):
    return _sgd_step(0.11 if api is TRITONFLOW else 0.1)(size, api)


def test_training_step_checks_loss_gradients_and_updated_arguments_of_every_provider():
    step = Workload("sgd step", _sgd_step(0.1), key="sgd", trains=True)
    chosen = ("tritonflow eager", "tritonflow compiled", "torch eager")  # torch.compile: see test_cli
    result = peers.measure(step, "tiny", quick=True, repeats=1, providers=chosen)
    for name in chosen:
        entry = result.providers[name]
        # Each provider starts from its own copy: one's update leaking into another's start fails it.
        assert entry.unavailable is None and entry.max_error < peers.TOLERANCE["float32"], (name, entry)
    fn, _ = step.make("tiny")
    w, x, y = step.arguments("tiny", seed=1)
    got = peers._step(fn, [w, x, y], [w], None, trains=True)()
    assert [tuple(t.shape) for t in got] == [(), (6, 3), (6, 3), (8, 6), (8, 3)]  # loss, grad, then w, x, y
    wrong = Workload("sgd step, wrong", _sgd_wrong_for_tritonflow, key="sgd_wrong", trains=True)
    with pytest.raises(Mismatch, match=r"^sgd_wrong 6x3 f32: tritonflow eager differs from the float64 reference"):
        peers.measure(wrong, "tiny", quick=True, repeats=1)


def test_provider_copies_share_no_memory_with_the_arguments():
    import torch

    import tritonflow as tf
    original = tf.tensor(np.arange(4.0, dtype=np.float32))
    for lib in (tf, torch):
        (copy,) = peers._copies([original], lib, "cpu")
        with lib.no_grad():
            copy.copy_(copy * 0.0 + 9.0)
        assert original.numpy().tolist() == [0.0, 1.0, 2.0, 3.0], lib.__name__


def test_workload_init_sets_each_arguments_mean_and_spread():
    step = Workload("sgd step", _sgd_step(0.1), key="sgd", trains=True, init=((1.0, 0.01), None), nonnegative=(2,))
    w, x, y = (a.detach().numpy() for a in step.arguments("tiny", seed=3))
    assert abs(w.mean() - 1.0) < 0.01 and 0.003 < w.std() < 0.03
    assert abs(x.mean()) < 0.5 and 0.5 < x.std() < 1.5 and y.min() >= 0

def _result(key, kind="memory", **seconds) -> WorkloadResult:
    names = {"tf_eager": "tritonflow eager", "tf": "tritonflow compiled", "torch": "torch eager",
             "compiled": "torch.compile"}
    r = WorkloadResult(key, key, kind)
    for short, value in seconds.items():
        r.providers[names[short]] = ProviderResult(seconds=value)
    r.providers["tritonflow compiled"].compile_seconds = 0.01
    r.providers["torch.compile"].compile_seconds = 2.0
    return r


def test_compiled_against_eager_is_judged_round_by_round():
    """Rounds ran back to back: outside load that starts in round 4 between eager's sample and
    compiled's slows compiled's sample of that round and both from round 5 on. The medians are
    29% apart; round by round compiled was slower once."""
    eager = [1.00, 1.00, 1.00, 1.00, 1.30, 1.30, 1.30]
    compiled = [0.99, 0.99, 0.99, 1.29, 1.29, 1.29, 1.29]
    r = _result("paired", tf_eager=1.0, tf=1.0, torch=1.0, compiled=1.0)
    r.providers["tritonflow eager"].samples, r.providers["tritonflow eager"].seconds = eager, 1.0
    r.providers["tritonflow compiled"].samples, r.providers["tritonflow compiled"].seconds = compiled, 1.29
    assert r.providers["tritonflow compiled"].seconds > 1.05 * r.providers["tritonflow eager"].seconds
    assert report.compiled_over_eager(r) == pytest.approx(1.29 / 1.30)
    assert report.summarize([r], "cpu")["compiled_slower_than_eager"] == []
    r.providers["tritonflow compiled"].samples = [x * 1.2 for x in eager]   # slower in every round
    assert report.compiled_over_eager(r) == pytest.approx(1.2)
    assert report.summarize([r], "cpu")["compiled_slower_than_eager"] == ["paired"]


def test_summary_ratios_geomeans_and_cpu_targets():
    results = [_result("a", tf_eager=2.0, tf=1.0, torch=2.0, compiled=1.0),
               _result("b", tf_eager=1.0, tf=1.0, torch=0.5, compiled=1.0)]
    assert report.speedup(results[0], "tritonflow compiled") == 2.0
    assert report.speedup(results[0], "tritonflow compiled", "torch.compile") == 1.0
    summary = report.summarize(results, "cpu")
    assert summary["geomean_speedup"]["tritonflow compiled"] == pytest.approx(1.0)   # sqrt(2 * 0.5)
    assert summary["geomean_speedup"]["torch.compile"] == pytest.approx(math.sqrt(2 * 0.5))
    assert summary["compile_cost_ratio"] == pytest.approx(200.0)
    assert summary["targets"] == {"compiled never slower than tritonflow eager": True,
                                  "compiled geomean at most 1.25x slower than torch eager": True,
                                  "compile cost at least 50x below torch.compile's": True}
    slow = results + [_result("c", tf_eager=1.0, tf=1.2, torch=0.4, compiled=1.0)]
    summary = report.summarize(slow, "cpu")
    assert summary["compiled_slower_than_eager"] == ["c"]
    assert summary["targets"]["compiled never slower than tritonflow eager"] is False
    assert summary["targets"]["compiled geomean at most 1.25x slower than torch eager"] is False  # 0.69x


def test_gpu_targets_use_bandwidth_fraction_and_peers():
    results = [_result("relu", tf_eager=3.0, tf=1.0, torch=1.5, compiled=1.2),
               _result("matmul_bf16", "compute", tf_eager=3.0, tf=1.0, torch=0.95, compiled=1.0),
               _result("attention", "compute", tf_eager=3.0, tf=1.0, torch=0.6, compiled=1.0)]
    results[0].providers["tritonflow compiled"].bandwidth_fraction = 0.9
    targets = report.summarize(results, "cuda")["targets"]
    assert targets["memory-bound workloads at 85%+ of the copy bandwidth"] is True
    assert targets["matmul at 90%+ of cuBLAS (torch eager)"] is True        # 0.95
    assert targets["causal attention at 70%+ of SDPA (torch eager)"] is False  # 0.6
    results[0].providers["tritonflow compiled"].bandwidth_fraction = None
    assert report.summarize(results, "cuda")["targets"]["memory-bound workloads at 85%+ of the copy bandwidth"] is None


def _info():
    return {"date": "2026-12-01T00:00:00", "commit": "abc", "machine": "test cpu (2 cores)", "load_before": "0.1",
            "load_after": "0.2", "threads": 1, "python": "3.11", "versions": {"numpy": "2", "torch": "2", "triton": "3"}}


def test_markdown_json_and_plot(tmp_path):
    results = [_result("a", tf_eager=2e-3, tf=1e-3, torch=2e-3, compiled=5e-4)]
    results[0].providers["torch.compile"].unavailable = None
    summary = report.summarize(results, "cpu")
    text = report.markdown(_info(), results, summary, "cpu", quick=True)
    assert "| a | 2.00 ms | 1.00 ms | 2.00 ms | 500.0 us | 2.00x | 0.50x | 0.01 / 2 | — / — |" in text
    assert "| compile cost at least 50x below torch.compile's | PASS |" in text
    payload = json.loads(report.to_json(_info(), results, summary, {"quick": True}))
    assert payload["workloads"][0]["providers"]["tritonflow compiled"]["seconds"] == 1e-3
    report.plot(results, tmp_path / "p.png", "title")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_become_float64_without_losing_the_reference_bits():
    import torch

    import tritonflow as tf
    precise = 1.0 + 1e-12
    assert peers._as_f64(torch.tensor([precise], dtype=torch.float64))[0] == precise
    assert peers._as_f64(tf.tensor(np.array([precise]), dtype="float64"))[0] == precise
    assert peers._as_f64(torch.tensor([1.5], dtype=torch.bfloat16)).dtype == np.float64


def test_liger_columns_appear_where_it_ran(tmp_path):
    covered = _result("cross_entropy", tf_eager=4e-3, tf=1e-3, torch=2e-3, compiled=1.5e-3)
    covered.providers["liger"] = ProviderResult(seconds=2e-3)
    other = _result("softmax", tf_eager=2e-3, tf=1e-3, torch=2e-3, compiled=1e-3)
    other.providers["liger"] = ProviderResult(unavailable="Liger-Kernel has kernels for cross_entropy only")
    summary = report.summarize([covered, other], "cuda")
    assert summary["compiled_over_liger"] == {"geomean": 2.0, "workloads": 1}
    assert summary["geomean_speedup"]["liger"] == 1.0   # over the one workload it ran
    text = report.markdown(_info(), [covered, other], summary, "cuda", quick=True)
    assert "| workload | tritonflow eager | tritonflow compiled | torch eager | torch.compile | liger | compiled vs " \
           "torch eager | compiled vs torch.compile | compiled vs liger |" in text
    assert "| cross_entropy | 4.00 ms | 1.00 ms | 2.00 ms | 1.50 ms | 2.00 ms | 2.00x | 1.50x | 2.00x |" in text
    assert "| softmax | 2.00 ms | 1.00 ms | 2.00 ms | 1.00 ms | — | 2.00x | 1.00x | — |" in text
    assert "liger 1.00x" in text and "tritonflow compiled over Liger-Kernel: 2.00x on the 1 workloads it ran" in text
    assert "liger: Liger-Kernel has kernels for cross_entropy only" in text
    report.plot([covered, other], tmp_path / "p.png", "title")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
