"""The benchmark workload list (benchmarks/workloads.py): every workload builds at both sizes, its
tiny form runs jitted on the triton backend (Triton's interpreter here) and agrees with the numpy
backend (the spec), gradients included for training workloads."""
import os
import sys

import numpy as np
import pytest

import tritonflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tritonflow.benchmarks.workloads import SIZES, WORKLOADS, by_name, precision  # noqa: E402

TOLERANCE = {"float32": 2e-5, "bfloat16": 3e-2, "float16": 3e-3}


def _leaves(value) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _run(workload, backend: str) -> list:
    fn, specs = workload.make("tiny")
    args = workload.arguments("tiny", seed=3)
    with precision(workload):
        outs = _leaves(tf.jit(fn, backend=backend)(*args))
        results = [o.detach().float().numpy() for o in outs]
        if workload.trains:  # the step ran its own backward and update: its gradients and new arguments
            results += [a.grad.float().numpy() for a, s in zip(args, specs) if s.requires_grad]
            results += [a.detach().float().numpy() for a in args if a.dtype.is_floating_point]
        elif any(s.requires_grad for s in specs):
            outs[0].float().sum().backward()
            results += [a.grad.float().numpy() for a, s in zip(args, specs) if s.requires_grad]
    return results


def test_names_are_unique_and_sizes_differ():
    assert len({w.name for w in WORKLOADS}) == len(WORKLOADS)
    for workload in WORKLOADS:
        (gpu_fn, gpu_specs), (_, tiny_specs) = workload.make("gpu"), workload.make("tiny")
        assert callable(gpu_fn) and len(gpu_specs) == len(tiny_specs)
        assert sum(np.prod(s.shape) for s in gpu_specs) > 50 * sum(np.prod(s.shape) for s in tiny_specs)
    with pytest.raises(ValueError, match="one of gpu, cpu, small, tiny"):
        WORKLOADS[0].make("huge")
    assert SIZES == ("gpu", "cpu", "small", "tiny") and by_name("softmax f32 16384x4096").kind == "memory"
    assert by_name("softmax") is by_name("softmax f32 16384x4096")
    assert len({w.key for w in WORKLOADS}) == len(WORKLOADS) and all(w.key for w in WORKLOADS)


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.key)
def test_cpu_sizes_are_float32_and_between_tiny_and_gpu(workload):
    numel = {size: sum(np.prod(s.shape) for s in workload.make(size)[1]) for size in SIZES}
    assert numel["tiny"] < numel["small"] <= numel["cpu"] < numel["gpu"]
    for size in ("cpu", "small"):
        assert all(s.dtype.name in ("float32", "int64") for s in workload.make(size)[1])
    assert workload.label("gpu") == workload.name and workload.label("cpu").startswith(workload.key + " ")


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.name)
def test_tiny_workload_agrees_across_backends(workload):
    got, want = _run(workload, "triton"), _run(workload, "numpy")
    _, specs = workload.make("tiny")
    tol = max(TOLERANCE.get(s.dtype.name, 1e-5) for s in specs if s.dtype.is_floating_point)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.all(np.isfinite(w))
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * scale)
