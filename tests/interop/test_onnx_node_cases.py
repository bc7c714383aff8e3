"""tritonflow.onnx.load on ONNX's own node test cases: every case whose operators the importer covers
runs eagerly and under tritonflow.jit against the outputs the onnx package ships with it; at least
95% pass, and the ones that fail are exactly the listed features tritonflow does not have."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

import tritonflow as tf
from tritonflow.onnx.import_registry import HANDLERS
from tritonflow.onnx.loader import OnnxModule
from onnx_node_cases import KNOWN_FAILURES, UNSUPPORTED_OPS, all_cases, exclusion, selected_cases

# float16/bfloat16 cases compute op by op in the low precision (ONNX's expected outputs often come
# from float32): a few units in the last place, as DESIGN.md's tolerance table allows per op.
LOW_PRECISION = {"float16": (4e-3, 1e-3), "bfloat16": (3e-2, 1e-2)}


def as_array(value) -> np.ndarray:
    """A case's input or expected output: a NumPy array, or a TensorProto for types NumPy spells badly."""
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)


def _compare(got, want, case) -> None:
    got, want = got.numpy(), as_array(want)
    assert got.shape == want.shape, f"shape {got.shape} != expected {want.shape}"
    if want.dtype.kind in "fV" or got.dtype.kind in "fV":
        rtol, atol = LOW_PRECISION.get(str(want.dtype), (max(case.rtol, 1e-5), max(case.atol, 1e-6)))
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol,
                                   equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


def run_case(case, compiled: bool) -> None:
    module = OnnxModule(case.model)
    fn = tf.jit(module) if compiled else module
    for inputs, outputs in case.data_sets:
        args = [tf.from_numpy(as_array(a)) for a in inputs]
        if compiled:
            # Inputs that fix shapes (Unsqueeze's axes, Pad's pads, ...) go in as Python values:
            # static arguments under jit, as a tracing compiler needs them.
            shape_inputs = set(module.shape_inputs(*args))
            args = [a.numpy().tolist() if spec[0] in shape_inputs else a for a, spec in zip(args, module.input_specs)]
        got = fn(*args)
        got = got if isinstance(got, tuple) else (got,)
        assert len(got) == len(outputs)
        for g, w in zip(got, outputs):
            _compare(g, w, case)


def _failures(compiled: bool) -> dict:
    failures = {}
    for case in selected_cases():
        try:
            with tf.no_grad():
                run_case(case, compiled)
        except Exception as exc:  # noqa: BLE001  (every failure is collected and reported)
            failures[case.name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}"
    return failures


def _check(compiled: bool) -> None:
    selected = selected_cases()
    failures = _failures(compiled)
    passed = len(selected) - len(failures)
    report = "\n".join(f"  {name}: {why}" for name, why in sorted(failures.items()))
    print(f"\nONNX node cases ({'tritonflow.jit' if compiled else 'eager'}): {passed} of {len(selected)} selected "
          f"cases pass ({passed / len(selected):.1%}); failures:\n{report}")
    assert len(selected) > 800, f"only {len(selected)} cases selected"
    assert passed >= 0.95 * len(selected), report
    unexpected = {name: why for name, why in failures.items() if name not in KNOWN_FAILURES}
    assert not unexpected, "failures not in KNOWN_FAILURES:\n" + "\n".join(f"  {k}: {v}" for k, v in unexpected.items())
    names = {c.name for c in selected}
    stale = sorted(name for name in KNOWN_FAILURES if name in names and name not in failures)
    assert not stale, f"listed as failing but passing now (remove them from KNOWN_FAILURES): {stale}"


def test_selected_node_cases_run_eagerly():
    _check(compiled=False)


def test_selected_node_cases_run_under_jit():
    _check(compiled=True)


def test_unsupported_ops_are_listed_explicitly():
    listed = {op for ops in UNSUPPORTED_OPS.values() for op in ops}
    assert not listed & set(HANDLERS), f"listed as unsupported but handled: {sorted(listed & set(HANDLERS))}"
    seen = {node.op_type for case in all_cases() for node in case.model.graph.node}
    unlisted = seen - set(HANDLERS) - listed
    assert not unlisted, f"ops in ONNX's node cases that are neither handled nor listed: {sorted(unlisted)}"
    # Every excluded case says why; the supported-op ones are excluded only for types or opsets.
    reasons = [exclusion(c) for c in all_cases()]
    assert all(r is None or r for r in reasons)
