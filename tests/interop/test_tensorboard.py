"""tritonflow.utils.tensorboard.SummaryWriter: what it writes is read back by TensorBoard's own
EventAccumulator, and the values match NumPy's (the histogram) and the IR (the graph)."""
from __future__ import annotations

import os

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import tritonflow as tf
from tritonflow.utils.tensorboard import SummaryWriter
from interop_models import mlp


def read(log_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_scalars_histograms_and_text_read_back(tmp_path):
    values = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    with SummaryWriter(tmp_path) as writer:
        for step in range(5):
            writer.add_scalar("loss/train", 1.0 / (step + 1), step)
        writer.add_scalar("lr", tf.tensor(3e-3), 7, walltime=1234.5)        # a one-element tensor
        writer.add_histogram("weights", tf.from_numpy(values), 3)
        writer.add_histogram("weights_numpy_bins", values, 3, bins=20)
        writer.add_text("config", "model: **mlp**", 0)
    events = read(tmp_path)
    loss = events.Scalars("loss/train")
    assert [e.step for e in loss] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([e.value for e in loss], [1.0, 0.5, 1 / 3, 0.25, 0.2], rtol=1e-6)
    (lr,) = events.Scalars("lr")
    assert lr.step == 7 and lr.wall_time == 1234.5 and abs(lr.value - 3e-3) < 1e-9
    (histogram,) = events.Histograms("weights")
    h = histogram.histogram_value
    assert histogram.step == 3 and h.num == 1000
    np.testing.assert_allclose([h.min, h.max, h.sum, h.sum_squares],
                               [values.min(), values.max(), values.astype(np.float64).sum(),
                                np.square(values.astype(np.float64)).sum()], rtol=1e-6)
    assert sum(h.bucket) == 1000 and list(h.bucket_limit) == sorted(h.bucket_limit)
    (numpy_bins,) = events.Histograms("weights_numpy_bins")
    counts, edges = np.histogram(values.astype(np.float64), bins=20)
    assert list(numpy_bins.histogram_value.bucket) == counts.tolist()
    np.testing.assert_allclose(numpy_bins.histogram_value.bucket_limit, edges[1:])
    (text,) = events.Tensors("config")
    assert text.tensor_proto.string_val == [b"model: **mlp**"]
    assert events.SummaryMetadata("config").plugin_data.plugin_name == "text"


def test_add_scalars_writes_one_run_per_series(tmp_path):
    writer = SummaryWriter(tmp_path)
    for step in range(3):
        writer.add_scalars("loss", {"train": 1.0 - 0.1 * step, "test": 2.0 - 0.1 * step}, step)
    writer.close()
    for series, first in (("train", 1.0), ("test", 2.0)):
        run = tmp_path / f"loss_{series}"
        assert run.is_dir()
        scalars = read(run).Scalars("loss")
        np.testing.assert_allclose([s.value for s in scalars], [first, first - 0.1, first - 0.2], rtol=1e-6)


def test_add_graph_writes_the_compiled_ir(tmp_path):
    model = mlp()
    x = tf.randn(4, 16)
    writer = SummaryWriter(tmp_path)
    writer.add_graph(tf.compile(model), x)
    writer.close()
    graph = read(tmp_path).Graph()
    explained = tf.explain(tf.compile(model), x)
    ir_ops = [line.split("=", 1)[1].split()[0].split("[")[0] for line in explained.graph.splitlines()
              if line.lstrip().startswith("%")]
    body = [n for n in graph.node if n.op not in ("input", "output")]
    assert [n.op for n in body] == ir_ops
    assert sum(n.op == "matmul" for n in body) == 3
    names = {n.name for n in graph.node}
    assert all(i in names for n in graph.node for i in n.input)      # every edge names a node
    assert any(b"test_tensorboard.py" in n.attr["source"].s for n in body if "source" in n.attr)


def test_closed_writer_and_bad_values_are_clear_errors(tmp_path):
    writer = SummaryWriter(tmp_path)
    with pytest.raises(tf.DTypeError, match="a single value"):
        writer.add_scalar("x", tf.zeros(3))
    with pytest.raises(tf.DTypeError, match="expected a number"):
        writer.add_scalar("x", "high")
    writer.close()
    with pytest.raises(tf.DTypeError, match="closed"):
        writer.add_scalar("x", 1.0)
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))


def test_train_digits_example_logs_its_run(tmp_path):
    import importlib.util
    import pathlib
    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "train_digits.py"
    spec = importlib.util.spec_from_file_location("train_digits_logged", example)
    train_digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_digits)
    result = train_digits.train("mlp", "compiled", epochs=2, progress=False, log_dir=str(tmp_path))
    events = read(tmp_path)
    np.testing.assert_allclose([e.value for e in events.Scalars("loss/train")], result["losses"], rtol=1e-6)
    assert [e.step for e in events.Scalars("lr")] == [1, 2]
    (accuracy,) = events.Scalars("accuracy/test")
    assert abs(accuracy.value - result["accuracy"]) < 1e-6
    assert "params/1.weight" in events.Tags()["histograms"]
    assert any(n.op == "matmul" for n in events.Graph().node)
