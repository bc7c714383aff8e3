"""DLPack (zero-copy both ways with NumPy and torch), inference_mode, one_hot, and the generation
filters on the triton backend (sort, topk, scatter and multinomial lowered) against transformers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.utils.dlpack

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow.models import filter_logits, next_token


# ---------------------------------------------------------------- DLPack

def test_dlpack_export_shares_memory_with_numpy_and_torch():
    x = tf.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    as_numpy = np.from_dlpack(x)
    as_torch = torch.from_dlpack(x)
    assert np.shares_memory(as_numpy, x.numpy())
    assert as_torch.data_ptr() == x.numpy().ctypes.data
    as_torch[0, 0] = 100.0  # the consumer writes: the tensor sees it (as with torch's own DLPack)
    assert x.numpy()[0, 0] == 100.0 and as_numpy[0, 0] == 100.0
    view = x.T  # a strided tensor leaves with its strides
    np.testing.assert_array_equal(np.from_dlpack(view), x.numpy().T)
    assert x.__dlpack_device__() == (1, 0)
    half = tf.tensor(np.arange(4), dtype=tf.bfloat16)
    exported = torch.from_dlpack(half)
    assert exported.dtype == torch.bfloat16 and exported.data_ptr() == half.numpy().ctypes.data
    np.testing.assert_array_equal(exported.float().numpy(), [0, 1, 2, 3])


def test_from_dlpack_shares_memory():
    source = torch.arange(6, dtype=torch.int32)
    x = tf.from_dlpack(source)
    assert x.dtype is tf.int32 and x.numpy().ctypes.data == source.data_ptr()
    array = np.linspace(0, 1, 5)
    assert np.shares_memory(tf.from_dlpack(array).numpy(), array)
    bf = torch.ones(3, dtype=torch.bfloat16)
    y = tf.from_dlpack(bf)
    assert y.dtype is tf.bfloat16 and y.numpy().ctypes.data == bf.data_ptr()
    capsule = torch.utils.dlpack.to_dlpack(torch.arange(3.0))
    np.testing.assert_array_equal(tf.from_dlpack(capsule).numpy(), [0.0, 1.0, 2.0])
    with pytest.raises(tf.DTypeError, match="from_dlpack: expected an object with __dlpack__"):
        tf.from_dlpack([1, 2])


def test_dlpack_refuses_tensors_requiring_grad_and_traced_ones():
    with pytest.raises(tf.AutogradError, match="can't export a tensor that requires grad; use tensor.detach()"):
        torch.from_dlpack(tf.ones(3, requires_grad=True))
    assert torch.from_dlpack(tf.ones(3, requires_grad=True).detach()).shape == (3,)
    with pytest.raises(tf.TraceError, match="__dlpack__ needs a concrete value"):
        tf.jit(lambda t: np.from_dlpack(t))(tf.ones(2))


def test_sort_topk_and_index_put_export_to_onnx(tmp_path):
    import onnxruntime as ort

    def program(x, index, value):
        values, order = tf.sort(x, -1, descending=True)
        return order, tf.topk(x, 2, 0).indices, x.index_put((index,), value), values

    x = tf.tensor(np.round(np.random.default_rng(4).standard_normal((4, 6)) * 2).astype(np.float32))  # ties
    index, value = tf.tensor([2, 0]), tf.tensor(np.ones((2, 6), np.float32))
    path = tmp_path / "sorting.onnx"
    tf.onnx.export(program, (x, index, value), path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: a.numpy() for i, a in zip(session.get_inputs(), (x, index, value))})
    for g, w in zip(got, program(x, index, value)):
        np.testing.assert_array_equal(g, w.numpy())


# ---------------------------------------------------------------- inference_mode

def test_inference_mode_records_no_gradients_and_restores_the_mode():
    w = tf.ones(3, requires_grad=True)
    with tf.inference_mode():
        assert tf.is_inference_mode_enabled() and not tf.is_grad_enabled()
        y = w * 2.0
        with tf.inference_mode(False):
            assert not tf.is_inference_mode_enabled() and not tf.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert tf.is_grad_enabled() and not tf.is_inference_mode_enabled()

    @tf.inference_mode()
    def predict(x):
        return tf.jit(lambda t: (t * w).sum())(x)
    out = predict(tf.ones(3))
    assert out.item() == 3.0 and not out.requires_grad
    z = (w * 2.0).sum()
    z.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 2.0, 2.0])


# ---------------------------------------------------------------- one_hot

def test_one_hot_matches_torch_and_checks_labels():
    labels = np.array([[0, 3], [2, 1]])
    np.testing.assert_array_equal(F.one_hot(tf.tensor(labels), 5).numpy(),
                                  torch.nn.functional.one_hot(torch.from_numpy(labels), 5).numpy())
    np.testing.assert_array_equal(F.one_hot(tf.tensor(labels)).numpy(),
                                  torch.nn.functional.one_hot(torch.from_numpy(labels)).numpy())
    jitted = tf.jit(lambda t: F.one_hot(t, 4), backend="triton")(tf.tensor(labels))
    np.testing.assert_array_equal(jitted.numpy(), torch.nn.functional.one_hot(torch.from_numpy(labels), 4).numpy())
    with pytest.raises(tf.TritonflowIndexError, match="class 3 is out of range for num_classes=3"):
        F.one_hot(tf.tensor(labels), 3)
    with pytest.raises(tf.TritonflowIndexError, match="class values must be non-negative"):
        F.one_hot(tf.tensor([-1, 0]), 3)
    with pytest.raises(tf.TraceError, match="num_classes=-1 reads the largest label"):
        tf.jit(lambda t: F.one_hot(t))(tf.tensor(labels))


# ---------------------------------------------------------------- generation filters on the triton backend

@pytest.mark.parametrize("temperature, top_k, top_p", [(0.9, 12, 0.8), (1.0, 5, None), (1.3, None, 0.5)])
def test_generation_filters_on_the_triton_backend_match_transformers(temperature, top_k, top_p):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
    logits = (np.random.default_rng(9).standard_normal((3, 40)) * 3).astype(np.float32)
    scores = TemperatureLogitsWarper(temperature)(None, torch.from_numpy(logits))
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p is not None:
        scores = TopPLogitsWarper(top_p)(None, scores)
    want = scores.numpy()
    got = tf.jit(filter_logits, backend="triton")(tf.tensor(logits), temperature, top_k, top_p).numpy()
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[~np.isinf(want)], want[~np.isinf(want)], rtol=1e-6)
    tf.manual_seed(2)
    tokens = tf.jit(next_token, backend="triton")(tf.tensor(logits), temperature, top_k, top_p).numpy()
    tf.manual_seed(2)
    np.testing.assert_array_equal(tokens, tf.jit(next_token)(tf.tensor(logits), temperature, top_k, top_p).numpy())
    assert not np.isinf(want[np.arange(3), tokens]).any()  # every drawn token survived the filters
