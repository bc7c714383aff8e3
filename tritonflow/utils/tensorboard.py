"""Training utilities: `SummaryWriter`, TensorBoard logging with torch.utils.tensorboard's names.

Events go through the `tensorboard` package's own event-file writer (an optional extra, imported
when a writer is made), so TensorBoard and its EventAccumulator read them as they read any run.
`add_graph` writes the final IR of a compiled function (what tritonflow.jit runs) as a GraphDef:
one node per IR node, its op, shape, dtype, attributes and the user's source line.
"""
from __future__ import annotations

import os
import socket
import time
from datetime import datetime

import numpy as np

from tritonflow.errors import DTypeError


def _scalar(value, what: str) -> float:
    from tritonflow.api.convert import is_tensor
    if is_tensor(value):
        if value.numel() != 1:
            raise DTypeError(f"{what}: expected a single value, got a tensor of shape {tuple(value.shape)}")
        return float(value.detach().numpy().reshape(-1)[0])
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DTypeError(f"{what}: expected a number or a one-element tensor, got {type(value).__name__}") from None


def _array(values) -> np.ndarray:
    from tritonflow.api.convert import is_tensor
    array = values.detach().numpy() if is_tensor(values) else np.asarray(values)
    return array.astype(np.float64).reshape(-1)


def _tensorflow_bucket_limits() -> np.ndarray:
    """TensorFlow's default histogram edges: +-1e-12 growing by 10% per bucket up to 1e20."""
    positive = [1e-12]
    while positive[-1] < 1e20:
        positive.append(positive[-1] * 1.1)
    return np.asarray([-v for v in reversed(positive)] + [0.0] + positive)


def histogram_proto(values, bins="tensorflow", max_bins: int | None = None):
    """A HistogramProto of `values`: TensorFlow's buckets, or NumPy's (`bins` an int or a rule name)."""
    from tensorboard.compat.proto.summary_pb2 import HistogramProto
    array = _array(values)
    if array.size == 0:
        raise DTypeError("add_histogram: the values are empty")
    if bins == "tensorflow":
        limits = _tensorflow_bucket_limits()
        counts = np.bincount(np.searchsorted(limits, array, side="left"), minlength=limits.size + 1)[:limits.size]
        used = np.nonzero(counts)[0]
        first, last = max(used[0] - 1, 0), used[-1] + 1   # keep one empty bucket on each side
        limits, counts = limits[first:last + 1], counts[first:last + 1]
    else:
        if max_bins is not None and isinstance(bins, int):
            bins = min(bins, max_bins)
        counts, edges = np.histogram(array, bins=bins)
        limits = edges[1:]
    return HistogramProto(min=float(array.min()), max=float(array.max()), num=float(array.size),
                          sum=float(array.sum()), sum_squares=float(np.dot(array, array)),
                          bucket_limit=[float(v) for v in limits], bucket=[float(c) for c in counts])


def graph_def_of(graph):
    """A TensorBoard GraphDef of a tritonflow IR graph."""
    from tensorboard.compat.proto.attr_value_pb2 import AttrValue
    from tensorboard.compat.proto.graph_pb2 import GraphDef
    from tensorboard.compat.proto.node_def_pb2 import NodeDef
    from tensorboard.compat.proto.versions_pb2 import VersionDef
    from tritonflow.ir.graph import format_attr
    names: dict[int, str] = {}
    nodes = []

    def text(value: str):
        return AttrValue(s=value.encode())

    for node in graph.inputs:
        names[id(node)] = f"input/{node.name}"
        nodes.append(NodeDef(name=names[id(node)], op="input",
                             attr={"type": text(str(node.type)), "dtype": text(node.type.dtype.name)}))
    for index, node in enumerate(graph.nodes):
        names[id(node)] = f"{graph.name}/{node.op}_{index}"
        attrs = {"type": text(str(node.type)), "dtype": text(node.type.dtype.name)}
        if node.loc is not None:
            attrs["source"] = text(node.loc.describe())
        for key, value in node.attrs.items():
            attrs[f"attr_{key}"] = text(format_attr(value))
        nodes.append(NodeDef(name=names[id(node)], op=node.op, input=[names[id(i)] for i in node.inputs],
                             attr=attrs))
    for k, node in enumerate(graph.outputs):
        nodes.append(NodeDef(name=f"output/{k}", op="output", input=[names[id(node)]],
                             attr={"type": text(str(node.type))}))
    return GraphDef(node=nodes, versions=VersionDef(producer=22))


def _default_log_dir(comment: str) -> str:
    stamp = datetime.now().strftime("%b%d_%H-%M-%S")
    return os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")


class SummaryWriter:
    """Writes scalars, histograms, text and graphs to event files under `log_dir` for TensorBoard.

    `log_dir` defaults to runs/<date>_<host><comment>, as in PyTorch. `add_scalars` writes each
    series to its own run, `log_dir/<main_tag>_<tag>`, so TensorBoard draws them in one chart.
    """

    def __init__(self, log_dir: str | os.PathLike | None = None, comment: str = "", max_queue: int = 10,
                 flush_secs: int = 120, filename_suffix: str = "") -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        self.log_dir = os.fspath(log_dir) if log_dir is not None else _default_log_dir(comment)
        self._options = dict(max_queue_size=max_queue, flush_secs=flush_secs, filename_suffix=filename_suffix)
        self._writer = EventFileWriter(self.log_dir, **self._options)
        self._series_writers: dict[str, object] = {}
        self._closed = False

    def get_logdir(self) -> str:
        return self.log_dir

    # ---------------------------------------------------------------- events

    def _event(self, writer, global_step, walltime, **fields) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        if self._closed:
            raise DTypeError(f"SummaryWriter({self.log_dir!r}) is closed")
        event = Event(wall_time=time.time() if walltime is None else float(walltime), **fields)
        if global_step is not None:
            event.step = int(global_step)
        writer.add_event(event)

    def _summary(self, value, global_step, walltime, writer=None) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary
        self._event(writer or self._writer, global_step, walltime, summary=Summary(value=[value]))

    def add_scalar(self, tag: str, scalar_value, global_step: int | None = None, walltime: float | None = None) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary
        value = _scalar(scalar_value, f"add_scalar({tag!r})")
        self._summary(Summary.Value(tag=tag, simple_value=value), global_step, walltime)

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict, global_step: int | None = None,
                    walltime: float | None = None) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        walltime = time.time() if walltime is None else walltime
        for tag, scalar_value in tag_scalar_dict.items():
            run = f"{main_tag}_{tag}".replace("/", "_")
            writer = self._series_writers.get(run)
            if writer is None:
                writer = EventFileWriter(os.path.join(self.log_dir, run), **self._options)
                self._series_writers[run] = writer
            value = _scalar(scalar_value, f"add_scalars({main_tag!r}, {tag!r})")
            self._summary(Summary.Value(tag=main_tag, simple_value=value), global_step, walltime, writer)

    def add_histogram(self, tag: str, values, global_step: int | None = None, bins="tensorflow",
                      walltime: float | None = None, max_bins: int | None = None) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary
        histogram = histogram_proto(values, bins, max_bins)
        self._summary(Summary.Value(tag=tag, histo=histogram), global_step, walltime)

    def add_text(self, tag: str, text_string: str, global_step: int | None = None,
                 walltime: float | None = None) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
        tensor = TensorProto(dtype=7, string_val=[str(text_string).encode()],   # 7: DT_STRING
                             tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
        metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
        self._summary(Summary.Value(tag=tag, metadata=metadata, tensor=tensor), global_step, walltime)

    def add_graph(self, model, input_to_model=None, verbose: bool = False) -> None:
        """The final IR of `model` (a jitted function, tritonflow.compile(module), a module or a
        function) compiled for `input_to_model` (a tensor or a tuple of arguments)."""
        from tritonflow.jit_function import as_jit_function
        args = () if input_to_model is None else (input_to_model if isinstance(input_to_model, tuple)
                                                  else (input_to_model,))
        fn, fn_args, fn_kwargs = as_jit_function(model, args, {}, who="add_graph")
        entry, _ = fn.entry_for(tuple(fn_args), fn_kwargs)
        if verbose:
            print(entry.graph)
        self._event(self._writer, None, None, graph_def=graph_def_of(entry.graph).SerializeToString())

    # ---------------------------------------------------------------- lifetime

    def flush(self) -> None:
        for writer in (self._writer, *self._series_writers.values()):
            writer.flush()

    def close(self) -> None:
        if self._closed:
            return
        for writer in (self._writer, *self._series_writers.values()):
            writer.close()
        self._closed = True

    def __enter__(self) -> "SummaryWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
