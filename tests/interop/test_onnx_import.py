"""tritonflow.onnx.load: models exported by tritonflow load back with the same outputs (eagerly and
compiled), the same state-dict keys and trainable parameters; bad files are clear errors before
anything runs."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import tritonflow as tf
from tritonflow.onnx.import_registry import HANDLERS
from tritonflow.onnx.loader import OnnxModelError
from helpers import assert_close
from interop_models import BertEncoder, GPTBlock, bert_inputs, cnn, mlp

MODELS = {
    "mlp": (mlp, lambda: (tf.randn(4, 16),)),
    "cnn": (cnn, lambda: (tf.randn(2, 2, 8, 8),)),
    "gpt_block": (GPTBlock, lambda: (tf.randn(2, 6, 32),)),
    "bert_encoder": (lambda: BertEncoder().eval(), lambda: bert_inputs(2, 7)),
}


@pytest.mark.parametrize("name", MODELS)
def test_round_trip_gives_the_same_outputs(name, tmp_path):
    make, make_args = MODELS[name]
    tf.manual_seed(4)
    model, args = make(), make_args()
    path = tmp_path / f"{name}.onnx"
    tf.onnx.export(model, args, path)
    loaded = tf.onnx.load(path)
    assert sorted(k for k, _ in loaded.named_parameters()) == sorted(k for k, _ in model.named_parameters())
    with tf.no_grad():
        want = model.eval()(*args)
        eager = loaded(*args)
        compiled = tf.compile(loaded)(*args)
    assert_close(eager, want.numpy(), tf.float32, rtol_scale=4, msg="eager")
    assert_close(compiled, want.numpy(), tf.float32, rtol_scale=4, msg="compiled")
    assert any(n.op == "matmul" for n in loaded.ir(*args).nodes)


def test_loaded_parameters_train_like_the_original(tmp_path):
    tf.manual_seed(5)
    model, x = mlp(), tf.randn(3, 16)
    path = tmp_path / "mlp.onnx"
    tf.onnx.export(model, (x,), path)
    loaded = tf.onnx.load(path)
    for m in (model, loaded):
        m.zero_grad()
        (m(x) * tf.arange(5.0)).sum().backward()
    grads = dict(model.named_parameters())
    for key, p in loaded.named_parameters():
        assert p.grad is not None, key
        assert_close(p.grad, grads[key].grad.numpy(), tf.float32, rtol_scale=4, msg=key)
    # A parameter update is seen by the compiled model without recompiling: they are graph inputs.
    compiled = tf.compile(loaded)
    before = compiled(x).detach().numpy()
    with tf.no_grad():
        for p in loaded.parameters():
            p.mul_(0.5)
    after = compiled(x).detach().numpy()
    assert compiled.cache_info().misses == 1 and not np.allclose(before, after)


def _model(nodes, inputs, outputs, opset=18, initializers=(), domain_opsets=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in domain_opsets]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def _save(model, path):
    path.write_bytes(model.SerializeToString())
    return path


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])


def test_corrupt_and_missing_files_are_clear_errors(tmp_path):
    good = _save(_model([helper.make_node("Relu", ["x"], ["y"])], [X], [Y]), tmp_path / "good.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[:-7])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\xfe this is not a protobuf \x00\x01" * 8)
    for path in (truncated, garbage):
        with pytest.raises(OnnxModelError, match=str(path.name)) as info:
            tf.onnx.load(path)
        assert isinstance(info.value, tf.TritonflowError)
    with pytest.raises(OnnxModelError, match="cannot read"):
        tf.onnx.load(tmp_path / "missing.onnx")
    invalid = _save(_model([helper.make_node("Relu", ["nowhere"], ["y"])], [X], [Y]), tmp_path / "invalid.onnx")
    with pytest.raises(OnnxModelError, match="not a valid ONNX model"):
        tf.onnx.load(invalid)


@pytest.mark.parametrize("opset", [3, 99])
def test_unsupported_opset_is_refused(tmp_path, opset):
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [X], [Y], opset=opset)
    with pytest.raises(tf.UnsupportedError, match=f"opset {opset} is not supported"):
        tf.onnx.load(_save(model, tmp_path / "m.onnx"))


def test_unsupported_ops_are_named_with_their_node_and_nothing_runs(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(HANDLERS["Relu"], "run", lambda call: ran.append(call) or call.tensor(0))
    k = helper.make_tensor("k", TensorProto.INT64, [1], [2])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first_relu"),
             helper.make_node("TopK", ["r", "k"], ["v", "i"], name="pick_top", axis=1),
             helper.make_node("Relu", ["v"], ["y"], name="second_relu")]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    with pytest.raises(tf.UnsupportedError) as info:
        tf.onnx.load(_save(_model(nodes, [X], [y], initializers=[k]), tmp_path / "topk.onnx"))
    message = str(info.value)
    assert "unsupported operator TopK" in message and "'pick_top'" in message and "#1" in message
    assert ran == []


def test_foreign_domains_and_unsupported_attributes_are_refused(tmp_path):
    foreign = _model([helper.make_node("FusedGelu", ["x"], ["y"], domain="com.microsoft", name="fg")], [X], [Y],
                     domain_opsets=[("com.microsoft", 1)])
    with pytest.raises(tf.UnsupportedError, match="domain 'com.microsoft'"):
        tf.onnx.load(_save(foreign, tmp_path / "foreign.onnx"))
    reflect = _model([helper.make_node("ScatterElements", ["x", "i", "x"], ["y"], reduction="mul", name="sm")],
                     [X, helper.make_tensor_value_info("i", TensorProto.INT64, [2, 3])], [Y])
    with pytest.raises(tf.UnsupportedError, match="'sm'.*reduction 'mul'"):
        tf.onnx.load(_save(reflect, tmp_path / "scatter.onnx"))


def test_call_errors_name_the_input(tmp_path):
    loaded = tf.onnx.load(_save(_model([helper.make_node("Relu", ["x"], ["y"])], [X], [Y]), tmp_path / "m.onnx"))
    with pytest.raises(tf.DTypeError, match="input 'x' must be float32, got int64"):
        loaded(tf.zeros((2, 3), dtype=tf.int64))
    with pytest.raises(tf.ShapeError, match=r"input 'x' must have shape \(2, 3\), got \(3, 2\)"):
        loaded(tf.zeros((3, 2)))
    with pytest.raises(tf.ShapeError, match="takes 1 inputs"):
        loaded()


def test_a_shape_computed_from_input_values_needs_a_python_value_under_jit(tmp_path):
    shape = helper.make_tensor_value_info("shape", TensorProto.INT64, [2])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])
    loaded = tf.onnx.load(_save(_model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="rs")],
                                       [X, shape], [out]), tmp_path / "reshape.onnx"))
    x = tf.arange(6.0).reshape(2, 3)
    target = tf.tensor([3, 2])
    np.testing.assert_array_equal(loaded(x, target).numpy(), np.arange(6.0).reshape(3, 2))   # eager: fine
    compiled = tf.jit(loaded)
    with pytest.raises(tf.UnsupportedError, match="'rs'.*shape \\(input 1\\) must be computable"):
        compiled(x, target)
    assert loaded.shape_inputs(x, target) == ["shape"]
    np.testing.assert_array_equal(compiled(x, [3, 2]).numpy(), np.arange(6.0).reshape(3, 2))


def test_onnx_checker_accepts_what_export_wrote_and_load_reads_it_back(tmp_path):
    tf.manual_seed(6)
    model = GPTBlock()
    path = tmp_path / "gpt.onnx"
    tf.onnx.export(model, (tf.randn(1, 4, 32),), path, dynamic_axes={"x": {0: "batch", 1: "seq"}})
    onnx.checker.check_model(str(path), full_check=True)
    loaded = tf.onnx.load(path)
    x = tf.randn(3, 5, 32)   # another size than the export's: the file's dims are symbolic
    with tf.no_grad():
        assert_close(loaded(x), model(x).numpy(), tf.float32, rtol_scale=4)
