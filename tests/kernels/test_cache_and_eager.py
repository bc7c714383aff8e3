"""Kernel cache (memory, disk, corrupt entries, threads, a second process) and eager run_op."""
import logging
import os
import subprocess
import sys
import threading

import numpy as np

from tritonflow import kernels
from tritonflow.kernels import cache
from kernel_helpers import Builder, assert_close, to_numpy, to_torch
from tritonflow import dtypes as D
from tritonflow.ops.registry import OPS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _graph(scale):
    b = Builder("cached")
    x = b.input("x", (3, 5))
    return b.finish(b("mul", b("exp", x), b.const(scale)))


def test_memory_hit_and_cache_dir_mode():
    kernels.lower(_graph(1.25))
    before = kernels.cache_stats()
    kernels.lower(_graph(1.25))
    after = kernels.cache_stats()
    assert after["memory_hits"] == before["memory_hits"] + 1
    assert after["compiled"] == before["compiled"]
    mode = os.stat(cache.cache_dir()).st_mode & 0o777
    assert mode == 0o700 or os.environ.get("TRITONFLOW_CACHE_DIR")


def test_corrupt_entry_is_rebuilt_with_warning(caplog):
    low = kernels.lower(_graph(2.5))
    path = low.kernels[0].path
    with open(path, "w") as f:
        f.write("garbage that must never run\nraise SystemExit(3)\n")
    cache.reset_memory()
    with caplog.at_level(logging.WARNING, logger="tritonflow.kernels"):
        low2 = kernels.lower(_graph(2.5))
    assert any("corrupt" in r.message or "rebuilding" in r.message for r in caplog.records)
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    (out,) = low2([to_torch(x)], {})
    assert_close(to_numpy(out), np.exp(x.astype(np.float64)) * 2.5, D.float32)


def test_truncated_entry_is_rebuilt():
    low = kernels.lower(_graph(3.5))
    path = low.kernels[0].path
    text = open(path).read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])
    cache.reset_memory()
    before = kernels.cache_stats()
    kernels.lower(_graph(3.5))
    assert kernels.cache_stats()["compiled"] == before["compiled"] + 1


def test_threads_first_call_generate_once():
    graph = _graph(4.75)
    before = kernels.cache_stats()["compiled"]
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    results, errors = [], []

    def work():
        try:
            (out,) = kernels.lower(graph)([to_torch(x)], {})
            results.append(to_numpy(out))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert kernels.cache_stats()["compiled"] == before + 1
    for r in results:
        assert_close(r, np.exp(x.astype(np.float64)) * 4.75, D.float32)


SCRIPT = """
import os, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
from tritonflow import kernels
from kernel_helpers import Builder
b = Builder("cached")
x = b.input("x", (3, 5))
g = b.finish(b("mul", b("exp", x), b.const(6.5)))
kernels.lower(g)
print(kernels.cache_stats()["compiled"], kernels.cache_stats()["disk_hits"])
"""


def test_second_process_compiles_nothing():
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    code = SCRIPT.format(root=ROOT, here=here)
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    compiled, disk_hits = map(int, second.stdout.split())
    assert compiled == 0 and disk_hits >= 1


def test_eager_run_op_shares_the_lowering():
    from tritonflow.kernels.runtime.eager import run_op
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((3,)).astype(np.float32)
    op = OPS["add"]
    out_type = op.infer([Builder().input("a", a.shape).type, Builder().input("b", b.shape).type], {})
    out = run_op(op, [to_torch(a), to_torch(b)], {}, out_type)
    assert_close(to_numpy(out), a.astype(np.float64) + b, D.float32)
    before = kernels.cache_stats()["compiled"]
    run_op(op, [to_torch(a), to_torch(b)], {}, out_type)
    assert kernels.cache_stats()["compiled"] == before
    s = run_op(OPS["reduce_sum"], [to_torch(a)], {"dims": (0,), "keepdim": False},
               OPS["reduce_sum"].infer([out_type], {"dims": (0,), "keepdim": False}))
    assert_close(to_numpy(s), a.astype(np.float64).sum(0), D.float32, scale=4)
