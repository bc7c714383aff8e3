"""Fuzzer stage: run one program on the reference and on the backend under test, and compare.

The reference is the numpy backend on the inputs upcast to float64 (int64 for integer programs).
The comparison applies DESIGN.md's per-dtype tolerances, widened for what a chain of ops may
legitimately accumulate: each line may round once at the program's dtype (rtol times the number
of lines), reductions and matmuls accumulate in float32 or better (float32 rtol times the largest
input size), and absolute error is measured against the largest intermediate magnitude of the
reference (a rounding error made at a large intermediate survives a later cancellation). A wrong
index, axis, broadcast or formula is off by O(1) and fails by orders of magnitude; NaN positions
and infinities must match exactly, and integers must match exactly.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

import tritonflow as tf
from tritonflow import dtypes as D
from tritonflow import philox
from tritonflow.errors import UnsupportedError
from tritonflow.fuzz.program import Program, reference_dtype

TOLERANCES = {"float64": (1e-12, 1e-14), "float32": (1.3e-6, 1e-5), "float16": (1e-3, 1e-5),
              "bfloat16": (1.6e-2, 1e-5)}
ACCUMULATE_RTOL = {"float64": 1e-13}  # others accumulate in float32
SAFETY = 4.0


@dataclass
class Outcome:
    status: str                   # "ok", "mismatch", "error", "unsupported", "invalid"
    detail: str = ""
    max_error: float = 0.0        # the worst |got - want| / allowance (> 1 is a mismatch)

    @property
    def failed(self) -> bool:
        return self.status in ("mismatch", "error")


def _numpy(value) -> np.ndarray:
    return np.asarray(value.detach().numpy())


@contextmanager
def _seeded(prog: Program):
    """Random ops (rand, dropout) draw the same Philox stream in the reference run and the backend
    run: the default generator starts at the program's seed, and is restored afterwards."""
    generator = philox.default_generator
    saved = generator.get_state()
    generator.manual_seed(prog.input_seed)
    try:
        yield
    finally:
        generator.set_state(saved)


def reference(prog: Program):
    """(outputs, all node values) on the numpy backend at the upcast dtype; raises if invalid."""
    ref = D.as_dtype(reference_dtype(prog.dtype))
    arrays = [a.astype(ref.np) for a in prog.make_inputs()]
    fn = tf.jit(prog.function(tf.float64, all_values=True), backend="numpy")
    with _seeded(prog):
        values = fn(*[tf.from_numpy(a) for a in arrays])
    by_name = {n.name: _numpy(v) for n, v in zip(prog.nodes, values)}
    outputs = [by_name[name] for name in prog.outputs]
    return outputs, list(by_name.values())


def run_backend(prog: Program, backend: str, device: str = "cpu") -> list:
    fn = tf.jit(prog.function(D.as_dtype(prog.dtype) if D.as_dtype(prog.dtype).is_floating_point
                              else tf.float32), backend=backend)
    inputs = [tf.from_numpy(a) for a in prog.make_inputs()]
    if device != "cpu":
        inputs = [t.to(device) for t in inputs]
    with _seeded(prog):
        outputs = fn(*inputs)
    return [_numpy(o.to("cpu")) for o in outputs]


def allowance(prog: Program, all_values: list) -> tuple[float, float]:
    """(rtol, atol) for this program's outputs (see module docstring)."""
    rtol, atol = TOLERANCES.get(prog.dtype, (0.0, 0.0))
    if any("randn" in n.expr for n in prog.nodes):
        # Normal draws are float32 by definition (Box-Muller's log, sqrt and cos of float32
        # uniforms): any program holding one is as exact as float32 math is, whatever its dtype.
        rtol = max(rtol, TOLERANCES["float32"][0])
    acc = ACCUMULATE_RTOL.get(prog.dtype, TOLERANCES["float32"][0])
    lines = len(prog.nodes) + 1
    rtol_total = SAFETY * (rtol * lines + acc * prog.max_numel())
    finite = [np.abs(v[np.isfinite(v)]).max() for v in all_values
              if v.dtype.kind == "f" and v.size and np.isfinite(v).any()]
    scale = max(finite + [1.0])
    return rtol_total, atol + rtol_total * scale


def compare(got: list, want: list, prog: Program, all_values: list) -> Outcome:
    if len(got) != len(want):
        return Outcome("mismatch", f"{len(got)} outputs, want {len(want)}")
    rtol, atol = allowance(prog, all_values)
    worst = 0.0
    for index, (g, w) in enumerate(zip(got, want)):
        name = prog.outputs[index]
        if g.shape != w.shape:
            return Outcome("mismatch", f"output {name}: shape {g.shape}, want {w.shape}", float("inf"))
        if w.dtype.kind in "biu" or g.dtype.kind in "biu":
            bad = g.astype(np.int64) != w.astype(np.int64)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                return Outcome("mismatch", f"output {name}: {int(bad.sum())} of {g.size} integers differ; first at "
                                           f"{list(first)}: got {g[first]}, want {w[first]}", float("inf"))
            continue
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        if not np.array_equal(np.isnan(g64), np.isnan(w64)):
            where = np.argwhere(np.isnan(g64) != np.isnan(w64))[:3].tolist()
            return Outcome("mismatch", f"output {name}: NaN positions differ at {where}", float("inf"))
        inf_g, inf_w = np.isinf(g64), np.isinf(w64)
        if not np.array_equal(inf_g, inf_w) or not np.array_equal(g64[inf_g], w64[inf_w]):
            return Outcome("mismatch", f"output {name}: infinities differ", float("inf"))
        finite = np.isfinite(w64)
        err = np.where(finite, np.abs(g64 - w64), 0.0)
        allowed = atol + rtol * np.abs(np.where(finite, w64, 0.0))
        ratio = err / allowed
        judged = out_of_tolerance(f"output {name}", g64, w64, ratio, rtol, atol)
        if judged.failed:
            return judged
        worst = max(worst, judged.max_error)
    return Outcome("ok", "", worst)


def out_of_tolerance(label: str, got: np.ndarray, want: np.ndarray, ratio: np.ndarray, rtol: float,
                     atol: float) -> Outcome:
    """"ok" with the worst error / allowance (`ratio`), or the mismatch naming the first element over 1."""
    if not np.any(ratio > 1.0):
        return Outcome("ok", "", float(ratio.max()) if ratio.size else 0.0)
    first = tuple(int(i) for i in np.argwhere(ratio > 1.0)[0])
    return Outcome("mismatch", f"{label}: {int((ratio > 1).sum())} of {got.size} elements out of tolerance "
                               f"(rtol {rtol:.3g}, atol {atol:.3g}); first at {list(first)}: got {got[first]!r}, "
                               f"want {want[first]!r}", float(ratio.max()))


def check(prog: Program, backend: str, device: str = "cpu") -> Outcome:
    """Run `prog` on the reference and on `backend`; never raises."""
    try:
        want, all_values = reference(prog)
    except Exception as exc:  # the program itself is invalid (a shrink step broke it)
        return Outcome("invalid", f"{type(exc).__name__}: {exc}")
    try:
        got = run_backend(prog, backend, device)
    except UnsupportedError as exc:
        return Outcome("unsupported", f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        return Outcome("error", f"{type(exc).__name__}: {str(exc)[:2000]}")
    return compare(got, want, prog, all_values)
