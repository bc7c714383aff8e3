"""tritonflow.onnx.export: models and primitives checked by onnx.checker and run in onnxruntime (the
reference) against tritonflow's own outputs; dynamic dims; errors for what ONNX cannot express."""
from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest

import tritonflow as tf
from tritonflow.onnx.exporter import EMITTERS
from tritonflow.ops.registry import OPS
from helpers import assert_close
from interop_models import BertEncoder, GPTBlock, bert_inputs, cnn, mlp


def run_onnxruntime(path, feeds: dict) -> list:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: value.numpy() for name, value in feeds.items()})


def tritonflow_outputs(fn, args: tuple) -> list:
    with tf.no_grad():
        out = fn(*args)
    return list(out) if isinstance(out, (tuple, list)) else [out]


MODELS = {
    "mlp": (mlp, lambda: (tf.randn(4, 16),), ["x"]),
    "cnn": (cnn, lambda: (tf.randn(2, 2, 8, 8),), ["x"]),
    "gpt_block": (GPTBlock, lambda: (tf.randn(2, 6, 32),), ["x"]),
    "bert_encoder": (lambda: BertEncoder().eval(), lambda: bert_inputs(2, 7), ["ids", "padding"]),
}


@pytest.mark.parametrize("name", MODELS)
def test_model_matches_onnxruntime(name, tmp_path):
    make, make_args, input_names = MODELS[name]
    tf.manual_seed(0)
    model, args = make(), make_args()
    path = tmp_path / f"{name}.onnx"
    proto = tf.onnx.export(model, args, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert proto.opset_import[0].version >= 17
    assert [i.name for i in proto.graph.input] == input_names
    # Parameters are initializers under their state-dict keys; no parameter is a graph input.
    assert {init.name for init in proto.graph.initializer} == {k for k, _ in model.named_parameters()}
    got = run_onnxruntime(path, dict(zip(input_names, args)))
    want = tritonflow_outputs(model, args)
    assert len(got) == len(want) == 1
    assert_close(want[0], got[0], tf.float32, rtol_scale=20, msg=name)


def _dim_params(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_dynamic_axes_serve_every_size(tmp_path):
    tf.manual_seed(1)
    block = GPTBlock()
    path = tmp_path / "gpt.onnx"
    proto = tf.onnx.export(block, (tf.randn(2, 5, 32),), path, input_names=["x"], output_names=["y"],
                           dynamic_axes={"x": {0: "batch", 1: "seq"}, "y": {0: "batch", 1: "seq"}})
    assert _dim_params(proto.graph.input[0]) == ["batch", "seq", 32]
    assert _dim_params(proto.graph.output[0]) == ["batch", "seq", 32]
    for shape in [(2, 5, 32), (3, 9, 32), (1, 1, 32)]:   # the causal mask follows the length too
        x = tf.randn(*shape)
        (got,) = run_onnxruntime(path, {"x": x})
        assert_close(tritonflow_outputs(block, (x,))[0], got, tf.float32, rtol_scale=20, msg=str(shape))


def test_dynamic_batch_of_bert_and_cnn(tmp_path):
    tf.manual_seed(2)
    bert = BertEncoder().eval()
    path = tmp_path / "bert.onnx"
    tf.onnx.export(bert, bert_inputs(2, 6), path, dynamic_axes={"ids": [0], "padding": [0]})
    ids, padding = bert_inputs(5, 6, seed=3)
    (got,) = run_onnxruntime(path, {"ids": ids, "padding": padding})
    assert_close(tritonflow_outputs(bert, (ids, padding))[0], got, tf.float32, rtol_scale=20)
    conv = cnn()
    path = tmp_path / "cnn.onnx"
    proto = tf.onnx.export(conv, (tf.randn(3, 2, 8, 8),), path, dynamic=True)   # jit's leading-dim rule
    assert _dim_params(proto.graph.input[0])[0] == "s0"
    x = tf.randn(7, 2, 8, 8)
    (got,) = run_onnxruntime(path, {"x": x})
    assert_close(tritonflow_outputs(conv, (x,))[0], got, tf.float32, rtol_scale=20)


def test_opset_17_spells_reduction_axes_as_attributes(tmp_path):
    tf.manual_seed(3)
    conv = cnn()
    x = tf.randn(2, 2, 8, 8)
    path = tmp_path / "cnn17.onnx"
    proto = tf.onnx.export(conv, (x,), path, opset_version=17)
    assert proto.opset_import[0].version == 17
    assert any(n.op_type == "ReduceMax" and any(a.name == "axes" for a in n.attribute) for n in proto.graph.node)
    (got,) = run_onnxruntime(path, {"x": x})
    assert_close(tritonflow_outputs(conv, (x,))[0], got, tf.float32, rtol_scale=20)


def primitives(a, b, i, j, m):
    """Touches the primitives whose ONNX form is a decomposition, at their edge values."""
    return (tf.exp2(b), tf.log2(tf.abs(a) + 0.5), tf.log1p(tf.abs(a)), tf.expm1(b), tf.rsqrt(tf.abs(a) + 0.5),
            tf.sign(a), tf.isfinite(a), tf.floor(b), tf.round(b * 2.5), tf.isinf(a), tf.isnan(a),
            i // j, i % j, b // (b.flip(0) + 3.5), b % (b.flip(0) - 0.25), tf.pow(i, j), tf.pow(tf.abs(b), b),
            m & (i > 0), m | (j < 0), m ^ m.flip(0), ~m, m + m.flip(0), m * m.flip(0), tf.maximum(i, j),
            tf.where(m, a, b), (i != j), (m < m.flip(0)), tf.cumsum(i, 0), tf.cumsum(b, 0),
            tf.argmax(b, 0), tf.argmin(i, 0), tf.sum(m), tf.amax(b), i.to(tf.float32), b.to(tf.int32),
            tf.cat([b, b.flip(0)]), b[1:6:2], b.flip(0)[::3], tf.nn.functional.pad(b, (2, 1), value=-1.5),
            tf.gather(b, 0, tf.abs(j) % 8), tf.arange(5) * 2, tf.full((2, 3), 4.0) + b[:3])


def test_primitives_match_onnxruntime(tmp_path):
    a = tf.tensor([1.5, -2.0, 0.0, float("nan"), float("inf"), -0.5, 3.0, -float("inf")])
    b = tf.tensor([0.3, -1.7, 2.5, -2.5, 0.5, 1.49, -0.75, 2.0])
    i = tf.tensor([7, -7, 7, -7, 0, 5, -3, 2], dtype=tf.int32)
    j = tf.tensor([2, 2, -2, -2, 3, 0, -1, -2], dtype=tf.int32)   # a zero divisor: 0 in tritonflow
    m = tf.tensor([True, False, True, True, False, False, True, False])
    path = tmp_path / "primitives.onnx"
    tf.onnx.export(primitives, (a, b, i, j, m), path)
    got = run_onnxruntime(path, dict(zip("abijm", (a, b, i, j, m))))
    want = tritonflow_outputs(primitives, (a, b, i, j, m))
    assert len(got) == len(want)
    for k, (w, g) in enumerate(zip(want, got)):
        assert g.dtype == w.dtype.np, f"output {k}: {g.dtype} != {w.dtype.name}"
        assert_close(w, g, w.dtype, rtol_scale=4, msg=f"output {k}")


def test_every_op_table_primitive_has_an_onnx_form_or_says_why_not():
    assert set(OPS) <= set(EMITTERS), sorted(set(OPS) - set(EMITTERS))


def test_random_numbers_are_an_error_naming_the_op_and_line(tmp_path):
    def noisy(x):
        return x + tf.rand(3)   # the line the error must name

    path = tmp_path / "noisy.onnx"
    with pytest.raises(tf.UnsupportedError) as info:
        tf.onnx.export(noisy, (tf.randn(3),), path)
    message = str(info.value)
    assert "philox_uniform" in message and "has no ONNX form" in message
    assert "test_onnx_export.py" in message and "tf.rand(3)" in message
    assert not path.exists() and list(tmp_path.iterdir()) == []   # nothing half-written


def test_module_exports_in_eval_mode_and_keeps_its_mode(tmp_path):
    model = tf.nn.Sequential(tf.nn.Linear(4, 4), tf.nn.Dropout(0.5))
    model.train()
    x = tf.randn(2, 4)
    path = tmp_path / "dropout.onnx"
    tf.onnx.export(model, (x,), path)
    assert model.training and all(m.training for m in model.modules())
    (got,) = run_onnxruntime(path, {"x": x})
    model.eval()
    assert_close(tritonflow_outputs(model, (x,))[0], got, tf.float32, rtol_scale=4)


def test_bad_arguments_are_clear_errors(tmp_path):
    model, x = mlp(), tf.randn(2, 16)
    with pytest.raises(tf.ShapeError, match="neither inputs nor outputs"):
        tf.onnx.export(model, (x,), tmp_path / "a.onnx", dynamic_axes={"input": [0]})
    with pytest.raises(tf.UnsupportedError, match="opset_version 12"):
        tf.onnx.export(model, (x,), tmp_path / "a.onnx", opset_version=12)
    with pytest.raises(tf.ShapeError, match="2 input_names for 1 tensor inputs"):
        tf.onnx.export(model, (x,), tmp_path / "a.onnx", input_names=["x", "y"])

    def writes_in_place(x):
        x.add_(1.0)
        return x * 2

    with pytest.raises(tf.UnsupportedError, match="in place"):
        tf.onnx.export(writes_in_place, (x,), tmp_path / "a.onnx")
    assert list(tmp_path.iterdir()) == []
