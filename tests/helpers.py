"""Test helpers: DESIGN.md's tolerance table and an `assert_close` that applies it.

Compare a result against an independent float64 reference. Tolerances (rtol, atol) by the dtype
of the computation:

    float64   (1e-12, 1e-14)     float32  (1.3e-6, 1e-5)
    float16   (1e-3,  1e-5)      bfloat16 (1.6e-2, 1e-5)
    integers and bool: exact

Reductions and matmuls may pass `rtol_scale` (for example the reduction length, or its square
root) to widen rtol; write the reason next to the call. NaN positions must match exactly, and
infinities must match in sign and position.
"""
from __future__ import annotations

import numpy as np

TOLERANCES = {
    "float64": (1e-12, 1e-14),
    "float32": (1.3e-6, 1e-5),
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
}
EXACT = {"int8", "int16", "int32", "int64", "uint8", "bool"}


def dtype_name(dtype) -> str:
    """A dtype's canonical name from a tritonflow DType, a NumPy/ml_dtypes dtype, or a string."""
    name = getattr(dtype, "name", None)
    if name is None:
        name = str(dtype)
    name = str(name).replace("torch.", "").replace("tritonflow.", "")
    return {"bool_": "bool", "half": "float16", "float": "float32", "double": "float64"}.get(name, name)


def to_numpy(x) -> np.ndarray:
    """A NumPy array from a tritonflow Tensor, a torch tensor, a NumPy array or a Python scalar."""
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        if hasattr(x, "detach"):
            x = x.detach()
        if hasattr(x, "cpu"):
            x = x.cpu()
        return np.asarray(x.numpy())
    return np.asarray(x)


def tolerance(dtype, rtol_scale: float = 1) -> tuple[float, float] | None:
    """(rtol, atol) for `dtype`, or None when the comparison must be exact."""
    name = dtype_name(dtype)
    if name in EXACT:
        return None
    if name not in TOLERANCES:
        raise KeyError(f"assert_close: no tolerance for dtype {name!r}")
    rtol, atol = TOLERANCES[name]
    return rtol * rtol_scale, atol


def assert_close(got, want, dtype, rtol_scale: float = 1, msg: str = "") -> None:
    """Assert `got` matches the reference `want` within DESIGN.md's tolerance for `dtype`.

    Shapes must be equal (no broadcasting hides a wrong shape), NaNs must sit at the same
    positions, infinities must agree exactly, finite values must satisfy
    |got - want| <= atol + rtol * |want| (compared in float64).
    """
    g = to_numpy(got)
    w = to_numpy(want)
    prefix = f"{msg}: " if msg else ""
    assert g.shape == w.shape, f"{prefix}shape {g.shape} != reference shape {w.shape}"
    tol = tolerance(dtype, rtol_scale)
    if tol is None:
        if g.dtype == bool or w.dtype == bool:
            equal = g.astype(bool) == w.astype(bool)
        else:
            equal = g.astype(np.int64) == w.astype(np.int64)
        if not np.all(equal):
            bad = np.argwhere(~equal)[:5]
            raise AssertionError(f"{prefix}{int((~equal).sum())} of {g.size} elements differ ({dtype_name(dtype)} "
                                 f"must match exactly); first at {bad.tolist()}: got {g[tuple(bad[0])]}, "
                                 f"want {w[tuple(bad[0])]}")
        return
    rtol, atol = tol
    g64 = g.astype(np.float64)
    w64 = w.astype(np.float64)
    nan_g, nan_w = np.isnan(g64), np.isnan(w64)
    if not np.array_equal(nan_g, nan_w):
        where = np.argwhere(nan_g != nan_w)[:5].tolist()
        raise AssertionError(f"{prefix}NaN positions differ at {where}")
    inf_g, inf_w = np.isinf(g64), np.isinf(w64)
    if not np.array_equal(inf_g, inf_w) or not np.array_equal(g64[inf_g], w64[inf_w]):
        where = np.argwhere((inf_g != inf_w) | (inf_g & (g64 != w64)))[:5].tolist()
        raise AssertionError(f"{prefix}infinities differ at {where}")
    finite = ~(nan_g | inf_g)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf at positions already checked above
        err = np.abs(g64 - w64)
        allowed = atol + rtol * np.abs(w64)
    bad = finite & (err > allowed)
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        worst = float(np.max(np.where(finite, err / np.maximum(allowed, 1e-300), 0)))
        raise AssertionError(f"{prefix}{int(bad.sum())} of {g.size} elements out of tolerance "
                             f"({dtype_name(dtype)}: rtol={rtol:g}, atol={atol:g}); first at {list(first)}: "
                             f"got {float(g64[first])!r}, want {float(w64[first])!r}; worst error is {worst:.3g}x the allowance")


def _cuda_available() -> bool:
    """Whether a CUDA GPU is usable, decided without importing triton."""
    try:
        import torch
    except ImportError:
        return False  # no torch: the GPU path cannot run here anyway
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver install reports as "no GPU"
        return False


HAS_CUDA = _cuda_available()


def lowering_available() -> bool:
    """True once the kernels package provides `lower(graph, mode)` (the Triton lowering)."""
    try:
        from tritonflow import kernels
    except ImportError:
        return False
    return callable(getattr(kernels, "lower", None))


def private_kernel_cache(prefix: str):
    """A fresh folder for the generated kernels of a test directory (TRITONFLOW_CACHE_DIR unless the
    caller set one) and the `pytest_sessionfinish` hook that removes it after a passing run, for
    that directory's conftest to bind: a failing run keeps the sources its messages point to. The
    hook runs last of the session's finishers, since the --compile-for check (tests/conftest.py)
    still compiles from these sources when the tests are done, and may fail the run."""
    import os
    import shutil
    import tempfile

    import pytest

    folder = tempfile.mkdtemp(prefix=prefix)
    os.environ.setdefault("TRITONFLOW_CACHE_DIR", folder)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(session, exitstatus) -> None:
        if session.exitstatus == 0:
            shutil.rmtree(folder, ignore_errors=True)
    return folder, pytest_sessionfinish


def regions_counted(monkeypatch, tmp_path) -> dict:
    """Generated C at every size (the default leaves tensors this small to NumPy), compiled into a
    private cache; returns counters of graphs and regions the c backend made."""
    from tritonflow.native import backend as c_backend, regions
    monkeypatch.setattr(regions, "MIN_REGION_ELEMENTS", 0)
    monkeypatch.setenv("TRITONFLOW_CACHE_DIR", str(tmp_path / "cache"))
    counts = {"graphs": 0, "regions": 0}
    made = c_backend.CRunner.__init__

    def counting(self, graph, *args, **kwargs):
        made(self, graph, *args, **kwargs)
        counts["graphs"] += 1
        counts["regions"] += len(self.regions)
    monkeypatch.setattr(c_backend.CRunner, "__init__", counting)
    return counts
