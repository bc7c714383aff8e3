"""The GPU suite is known to start: `tritonflow bench --device cuda`'s path for every workload at
its tiny size, the compiled provider on the triton backend (Triton's interpreter here), each
provider checked against float64, the cost model's sm_90 prediction and the GPU report columns.
torch.compile is left out (several seconds of Inductor per workload); the CLI tests run it. Liger-Kernel
runs where the interpreter can run it (cross_entropy, linear_cross_entropy) and says why elsewhere."""
import importlib.util

import pytest

from tritonflow.benchmarks import liger_peer, peers, report
from tritonflow.benchmarks.workloads import BENCH_EXTRAS, WORKLOADS
from tritonflow.target import NAMED

H200_COPY_BANDWIDTH = 4.0e12   # bytes/s: any positive figure exercises the fraction column
PROVIDERS = ("tritonflow eager", "tritonflow compiled", "torch eager")
LIGER_INSTALLED = importlib.util.find_spec("liger_kernel") is not None


@pytest.fixture(scope="module")
def results():
    return {}


@pytest.mark.parametrize("workload", WORKLOADS + BENCH_EXTRAS, ids=lambda w: w.key)
def test_workload_runs_verified_on_the_triton_backend(workload, results):
    result = peers.measure(workload, "tiny", "cpu", quick=True, compiled_backend="triton", target=NAMED["sm_90"],
                           copy_bandwidth=H200_COPY_BANDWIDTH, providers=PROVIDERS + (liger_peer.PROVIDER,),
                           repeats=1)
    for name in PROVIDERS:
        entry = result.providers[name]
        assert entry.unavailable is None and entry.max_error is not None and entry.seconds > 0, (name, entry)
    liger = result.providers[liger_peer.PROVIDER]
    if LIGER_INSTALLED and workload.key in ("cross_entropy", "linear_cross_entropy"):
        assert liger.unavailable is None and liger.max_error < peers.TOLERANCE["bfloat16"], liger
    else:
        assert liger.seconds is None and liger.unavailable == liger_peer.unavailable(workload, "cpu", "triton"), liger
    assert result.providers["torch.compile"].unavailable == "not chosen"
    predicted = result.predicted
    assert predicted["target"] == "sm_90" and predicted["bytes"] > 0 and predicted["minimum_bytes"] > 0
    assert predicted["seconds"] > 0
    fraction = result.providers["tritonflow compiled"].bandwidth_fraction
    assert (fraction is not None and fraction > 0) == (workload.kind == "memory")
    results[workload.key] = result


def test_gpu_report_renders_every_workload(results):
    if len(results) < len(WORKLOADS + BENCH_EXTRAS):
        pytest.skip("needs every workload of the smoke run above (run the whole file)")
    ordered = [results[w.key] for w in WORKLOADS + BENCH_EXTRAS]
    summary = report.summarize(ordered, "cuda", {"copy_bandwidth": H200_COPY_BANDWIDTH})
    info = {"date": "d", "commit": "c", "machine": "interpreter", "load_before": "0", "load_after": "0", "threads": 1,
            "python": "3", "versions": {}}
    text = report.markdown(info, ordered, summary, "cuda", quick=True)
    assert "| predicted (cost model) | of copy bandwidth |" in text.splitlines()[6]
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for result in ordered:
        row = next(line for line in rows if line.startswith(f"| {result.label} |"))
        columns = 12 + 2 * LIGER_INSTALLED  # Liger's time and the compiled provider's speedup over it
        assert row.count("|") == columns and row.endswith("% |") == (result.kind == "memory"), row
    assert set(summary["targets"]) == {"geomean speedup at least 1.1x torch.compile's",
                                       "memory-bound workloads at 85%+ of the copy bandwidth",
                                       "matmul at 90%+ of cuBLAS (torch eager)",
                                       "causal attention at 70%+ of SDPA (torch eager)"}
    assert summary["targets"]["geomean speedup at least 1.1x torch.compile's"] is None  # torch.compile not run
