"""`tritonflow bench`, the command line of issue 11 item 3: bad requests are one line on stderr
and exit status 2; a run verifies every provider, prints the table and writes JSON, Markdown and a
PNG; results go to benchmarks/results only inside a checkout. No assertion is about a time."""
import json

import pytest

from tritonflow import cli, cli_bench, cli_suites


def _bench(capsys, *args):
    try:
        status = cli.main(["bench", *args])
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("args, message", [
    (["--only", "no_such_workload"], "tritonflow bench: error: unknown workload 'no_such_workload'; known: relu_mul_add"),
    (["--only", "matmul_fp16", "--device", "cpu"], "tritonflow bench: error: workload 'matmul_fp16' runs on cuda only"),
    (["--threads", "0"], "tritonflow bench: error: --threads must be at least 1, got 0"),
    (["--device", "tpu"], "tritonflow bench: error: argument --device: invalid choice: 'tpu'"),
    (["--quick", "--bogus"], "tritonflow: error: unrecognized arguments: --bogus"),
])
def test_bad_requests_are_one_line_exit_2(capsys, args, message):
    status, _, err = _bench(capsys, *args)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(message), err


def test_cuda_without_a_gpu_is_a_bad_request(capsys, monkeypatch):
    monkeypatch.setattr(cli_bench, "cuda_available", lambda: False)
    status, _, err = _bench(capsys, "--device", "cuda", "--quick")
    assert status == 2 and err == ("tritonflow bench: error: --device cuda: no CUDA GPU is available here "
                                   "(torch.cuda.is_available() is False)\n")


def test_workload_choice(capsys):
    quick = cli_bench.choose(None, "cpu", quick=True)
    every_cpu = cli_bench.choose(None, "cpu", quick=False)
    every_cuda = cli_bench.choose(None, "cuda", quick=False)
    assert set(quick) < set(every_cpu) < set(every_cuda)
    assert [w.key for w in every_cuda if w not in every_cpu] == ["matmul_fp16", "matmul_tf32", "attention_d128_bwd"]
    assert [w.key for w in cli_bench.choose(["softmax", "softmax f32 16384x4096", "adamw"], "cpu", False)] == \
        ["softmax", "adamw"]
    status, out, _ = _bench(capsys, "--list", "--quick", "--device", "cpu")
    assert status == 0 and [line.split()[0] for line in out.splitlines()] == [w.key for w in quick]


def test_results_go_to_a_checkout_or_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_bench.results_dir() == tmp_path
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "benchmarks").mkdir()
    assert cli_bench.results_dir() == tmp_path / "benchmarks" / "results"


def test_a_run_verifies_every_provider_and_writes_json_markdown_and_png(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, err = _bench(capsys, "--device", "cpu", "--only", "ten_op_call", "relu_mul_add",
                              "--json", str(tmp_path / "r" / "run.json"), "--plot", str(tmp_path / "chart.png"))
    assert status == 0, err
    assert "no GPU used: CPU providers only" in err and "tritonflow bench:" in err  # tqdm's bar goes to stderr
    payload = json.loads((tmp_path / "r" / "run.json").read_text())
    assert [w["key"] for w in payload["workloads"]] == ["ten_op_call", "relu_mul_add"]
    for workload in payload["workloads"]:
        for name, entry in workload["providers"].items():
            if name == "liger":  # a GPU peer: said so, and kept out of the table
                assert entry["unavailable"] == "Liger-Kernel's kernels run on a GPU; this run is on the CPU"
                continue
            assert entry["unavailable"] is None and entry["max_error"] < 2e-4, (workload["key"], name, entry)
            assert entry["seconds"] > 0
    assert payload["settings"] == {"device": "cpu", "size": "cpu", "quick": False, "threads": 1,
                                   "workloads": ["ten_op_call", "relu_mul_add"]}
    for field in ("date", "cpu", "cores", "versions", "commit", "load_before", "load_after", "threads"):
        assert field in payload["machine"]
    markdown = (tmp_path / "r" / "run.md").read_text()
    assert markdown in out + "\n"  # the table printed is the table written
    assert "| ten_op_call 4 f32 |" in markdown and "| relu_mul_add 4194304 f32 |" in markdown
    assert "| torch.compile | compiled vs torch eager |" in markdown and "| liger |" not in markdown
    assert "liger: Liger-Kernel's kernels run on a GPU; this run is on the CPU" in markdown
    assert "| compile cost at least 50x below torch.compile's |" in markdown
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_a_mismatch_fails_the_run_naming_the_workload(tmp_path, monkeypatch, capsys):
    from tritonflow.benchmarks import peers

    def disagree(provider, label, got, want, tolerance):
        raise peers.Mismatch(f"{label}: {provider} differs from the float64 reference by 0.5")
    monkeypatch.setattr(peers, "compare", disagree)
    status, _, err = _bench(capsys, "--device", "cpu", "--only", "ten_op_call", "--json", str(tmp_path / "x.json"))
    assert status == 1
    assert "tritonflow bench: FAILED: ten_op_call 4 f32: tritonflow eager differs from the float64 reference" in err


def test_suites_append_the_checkout_suites(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_suites, "run_cpu_suites", lambda quick: {"stub": {"markdown": "### Stub suite"}})
    status, out, _ = _bench(capsys, "--device", "cpu", "--only", "ten_op_call", "--suites",
                            "--json", str(tmp_path / "x.json"))
    assert status == 0 and "### Stub suite" in out and "### Stub suite" in (tmp_path / "x.md").read_text()
    assert "| stub | (no target) |" in out


def test_budget_skips_what_does_not_fit_and_says_so(tmp_path, capsys):
    status, _, err = _bench(capsys, "--device", "cpu", "--only", "ten_op_call", "adamw", "--budget", "1e-9",
                            "--json", str(tmp_path / "b.json"))
    assert status == 0
    assert "--budget 1e-09 s spent: skipped ten_op_call" in err and "skipped adamw" in err
    assert json.loads((tmp_path / "b.json").read_text())["workloads"] == []
