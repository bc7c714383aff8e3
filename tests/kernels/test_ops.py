"""Every primitive in the op table lowers: each sample runs as a one-op graph through kernels/ and
matches the op's NumPy meaning evaluated in float64 (an independent reference)."""
import numpy as np
import pytest

from tritonflow import kernels
from kernel_helpers import Builder, assert_close, to_numpy, to_torch, widen
from tritonflow import dtypes as D
from tritonflow.ops.registry import OPS, Kind

DTYPES = [D.float32, D.bfloat16, D.float16, D.int32, D.bool_]
TEMPLATE_OPS = {"matmul", "attention", "attention_lse", "attention_delta", "attention_dq", "attention_dkv"}  # kernels/templates


def test_every_primitive_has_a_lowering():
    """Each entry carries the code-generation record its kind needs (the lowering reads nothing else)."""
    from tritonflow.kernels.codegen.emit import INLINE_KINDS
    needs = {Kind.ELEMENTWISE: "triton", Kind.REDUCTION: "reduction", Kind.MOVEMENT: "view",
             Kind.CREATION: "creation", Kind.MATMUL: "triton", Kind.SORT: "sort"}
    for op in OPS.values():
        # Collectives run on the host between kernel segments (tritonflow/segmented_runner.py).
        lowered = (op.kind in INLINE_KINDS or op.kind in (Kind.REDUCTION, Kind.SCAN, Kind.SORT)
                   or op.name in TEMPLATE_OPS or op.atomic or op.extra.get("collective"))
        assert lowered, f"{op.name} ({op.kind}) has no lowering"
        if op.kind in needs:
            assert getattr(op, needs[op.kind]), f"{op.kind.value} op {op.name} sets no `{needs[op.kind]}`"
        if op.kind is Kind.MATMUL:
            assert op.triton in TEMPLATE_OPS, f"{op.name} names no known template"


def _cases():
    for op in OPS.values():
        for dtype in DTYPES:
            if op.dtypes and dtype.name not in op.dtypes:
                continue
            if op.samples is None or not op.samples(dtype):
                continue
            yield pytest.param(op, dtype, id=f"{op.name}-{dtype.name}")


def _reference(op, arrays, attrs, out_dtype):
    with np.errstate(all="ignore"):
        want = op.numpy(*[widen(a) for a in arrays], **attrs)
    want = np.asarray(want)
    if not out_dtype.is_floating_point:
        if want.dtype.kind == "f":
            want = np.trunc(want)
        want = want.astype(out_dtype.np)
    return want


@pytest.mark.parametrize("op,dtype", list(_cases()))
def test_op_matches_float64_numpy(op, dtype):
    samples = op.samples(dtype)
    checked = 0
    for arrays, attrs in samples:
        b = Builder(op.name)
        inputs = [b.input(f"in{i}", a.shape, D.from_numpy_dtype(a.dtype)) for i, a in enumerate(arrays)]
        try:
            node = b(op.name, *inputs, **attrs)
        except Exception:
            continue  # the op rejects this dtype/shape: not a lowering question
        graph = b.finish(node)
        low = kernels.lower(graph)
        (out,) = low([to_torch(a) for a in arrays], {})
        checked += 1
        got = to_numpy(out)
        want = _reference(op, arrays, attrs, node.dtype)
        scale = 1.0
        if op.kind in (Kind.REDUCTION, Kind.SCAN, Kind.MATMUL):
            scale = 4.0 + max(a.size for a in arrays)
        if op.name in ("pow", "tanh", "expm1", "log1p", "erf", "sigmoid", "exp2", "floor_divide", "remainder"):
            scale = max(scale, 4.0)
        if op.name == "floor_divide" and dtype.is_floating_point:
            continue_ok = np.abs(got.astype(np.float64) - want) <= 1
            assert continue_ok.all()
            continue
        assert_close(got, want.astype(np.float64) if node.dtype.is_floating_point else want,
                     node.dtype, scale=scale)
    assert checked, f"{op.name}: every {dtype.name} sample was rejected by the op's type rule; nothing was lowered"
