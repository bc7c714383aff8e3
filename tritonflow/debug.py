"""Debugging stage: `tritonflow.debug.verify(fn, *args)` — which kernel disagrees with the spec?

It compiles `fn` for `args` as `tritonflow.jit` would and checks the entry against the NumPy
interpreter kernel by kernel (IR node by IR node on the numpy backend): see spec_check.py, which
also holds the TRITONFLOW_VERIFY hook jit calls on every entry's first run.
"""
from __future__ import annotations

from tritonflow.jit_function import as_jit_function
from tritonflow.spec_check import KernelCheck, VerifyReport, verify_entry

__all__ = ["KernelCheck", "VerifyReport", "verify", "verify_entry"]


def verify(fn, *args, backend: str | None = None, **kwargs) -> VerifyReport:
    """Run `fn` (a function or a `tritonflow.jit` function) kernel by kernel against the interpreter.

    Returns a VerifyReport: `.ok`, `.first_divergence` (None when every kernel agrees) and a
    readable `str()`. `backend` picks the backend for a plain function (default: the one jit picks).
    """
    jitfn, args, kwargs = as_jit_function(fn, args, kwargs, backend=backend, who="verify")
    entry, leaves = jitfn.entry_for(args, kwargs)
    if entry.backward is not None:  # a differentiable entry: verify its forward graph
        forward = getattr(entry, "forward_entry", None)
        if forward is not None:
            entry = forward
    arrays = jitfn.input_arrays(entry, leaves)
    return verify_entry(entry, arrays, getattr(jitfn.fn, "__qualname__", "fn"))
