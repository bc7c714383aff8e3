"""Benchmarks: Liger-Kernel (github.com/linkedin/Liger-Kernel) as a peer of the triton backend — the
workloads Liger has Triton kernels for, run through its public functional API on torch tensors.

Each covered workload is the same computation in Liger's terms (checked against float64 like every
provider, by benchmarks/peers.py):
- rms_norm, rms_norm_bwd: `liger_rms_norm` with the workloads' epsilon, offset 0 and casting mode
  "gemma" — x and w in float32, the product rounded to the input dtype once, as tritonflow's F.rms_norm
  computes it (torch's CPU kernel rounds x * rstd before the weight: Liger's "llama" mode). in_place
  stays Liger's default (what its users run): the backward writes dx over the incoming gradient.
- swiglu: `liger_swiglu(gate, x)` = silu(gate) * x, silu in float32 rounded to the input dtype and the
  product in that dtype, as torch's and tritonflow's `F.silu(gate) * x`. Liger's kernel takes one row
  per program, at most 65536 wide: the 1-D workload is viewed as rows of gcd(n, 4096) elements.
- cross_entropy, cross_entropy_bwd: `liger_cross_entropy`, reduction "mean", ignore_index -100, no label
  smoothing (torch's defaults, and the workloads'). When a gradient is wanted its forward writes the
  logits' gradient over the logits.
- linear_cross_entropy: `liger_fused_linear_cross_entropy(x, W, target)`, same reduction and
  ignore_index: chunks of tokens, the whole logits matrix never exists.

Liger overwrites tensors it is handed, so this provider gets its own copies of the arguments; it is
checked on its first call, and the later timed calls run on the overwritten values (the kernels do
the same work whatever the values, even once a repeatedly overwritten gradient overflows).

Where it runs: on CUDA when liger_kernel imports. On a CPU only in the GPU smoke test's mode (triton
backend, Triton's interpreter), and there only cross_entropy and linear_cross_entropy: see
NOT_IN_INTERPRETER.
"""
from __future__ import annotations

import math
from typing import Callable

from tritonflow import environment
from tritonflow.benchmarks.workloads import NORM_EPS, Workload

PROVIDER = "liger"
IGNORE_INDEX = -100   # torch's default, which the workloads' F.cross_entropy calls keep

# Why a covered workload cannot run in Triton's interpreter (the GPU smoke test's mode); compiled Triton
# does neither of these. tests/bench/test_liger_peer.py checks that both still hold.
_FLOAT_ARGUMENT = ("Triton's interpreter passes a float kernel argument as a Python float and Liger's kernel "
                   "calls .to() on it (eps, gate_multiplier): checked on a GPU only")
_BF16_SCALAR = ("Triton's interpreter misreads a bfloat16 scalar loaded through a pointer, which Liger's backward "
                "scales the gradient by (the loss's cotangent): checked on a GPU only")
NOT_IN_INTERPRETER = {"rms_norm": _FLOAT_ARGUMENT, "rms_norm_bwd": _FLOAT_ARGUMENT, "swiglu": _FLOAT_ARGUMENT,
                      "cross_entropy_bwd": _BF16_SCALAR}


def _rms_norm(liger) -> Callable:
    return lambda x, weight: liger.liger_rms_norm(x, weight, NORM_EPS, offset=0.0, casting_mode="gemma",
                                                  in_place=True)


def _swiglu(liger) -> Callable:
    def swiglu(gate, x):
        width = math.gcd(gate.numel(), 4096)
        return liger.liger_swiglu(gate.view(-1, width), x.view(-1, width)).view(gate.shape)
    return swiglu


def _cross_entropy(liger) -> Callable:
    return lambda logits, target: liger.liger_cross_entropy(logits, target, ignore_index=IGNORE_INDEX,
                                                            reduction="mean", label_smoothing=0.0)


def _linear_cross_entropy(liger) -> Callable:
    return lambda x, weight, target: liger.liger_fused_linear_cross_entropy(x, weight, target,
                                                                            ignore_index=IGNORE_INDEX,
                                                                            reduction="mean")


# workload key -> (Liger's functional module) -> the workload's function on torch tensors
_BUILDERS = {"rms_norm": _rms_norm, "rms_norm_bwd": _rms_norm, "swiglu": _swiglu,
             "cross_entropy": _cross_entropy, "cross_entropy_bwd": _cross_entropy,
             "linear_cross_entropy": _linear_cross_entropy}
COVERED = tuple(_BUILDERS)


def unavailable(workload: Workload, device: str, compiled_backend: str) -> str | None:
    """Why Liger cannot run `workload` here (None: it can): the device, then the install, then the
    workload — so that a run's workloads share one sentence wherever they can (the report lists each once)."""
    on_cpu = device == "cpu"
    if on_cpu and (compiled_backend != "triton" or not environment.triton_interpret()):
        return "Liger-Kernel's kernels run on a GPU; this run is on the CPU"
    try:
        import liger_kernel.transformers.functional  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a broken install (say, built for another Triton) is a reason too
        return f"liger_kernel does not import ({type(exc).__name__}: {exc}); pip install liger-kernel"[:200]
    if workload.key not in _BUILDERS:
        return f"Liger-Kernel has kernels for {', '.join(COVERED)} only"
    if on_cpu and workload.key in NOT_IN_INTERPRETER:
        return NOT_IN_INTERPRETER[workload.key]
    return None


def function(workload: Workload) -> Callable:
    """`workload`'s function through Liger-Kernel's functional API (torch tensors in, torch tensors out)."""
    if workload.key not in _BUILDERS:
        raise KeyError(f"Liger-Kernel has no kernel for workload {workload.key!r}; it covers {', '.join(COVERED)}")
    from liger_kernel.transformers import functional as liger
    return _BUILDERS[workload.key](liger)
