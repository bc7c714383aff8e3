"""Graphs cut into stages (tritonflow/ir/split.py) and the compiled backward delivered stage by stage."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonflow as tf
from tritonflow import nn
from tritonflow.numpy_backend import NumpyRunner
from tritonflow.ir.split import StagedRun, split_graph, stages_by_output_groups
from tritonflow.staged_backward import StagedBackwardRunner, mark_backward_stages

RNG = np.random.default_rng(5)


def _graph():
    def f(x, w, b):
        h = tf.tanh(x @ w + b)
        s = h.sum(dim=1, keepdim=True)
        return h * s + 1.5, (h * h).mean(), s.exp()
    args = [tf.tensor(RNG.standard_normal(shape)) for shape in ((3, 4), (4, 5), (5,))]
    fn = tf.jit(f, backend="numpy")
    fn(*args)
    entry = next(iter(fn.entries.values()))
    return entry.graph, [a.numpy() for a in args]


@pytest.mark.parametrize("size", [1, 2, 3, 100])
def test_any_ordered_cut_gives_the_whole_graphs_values(size):
    graph, arrays = _graph()
    want = NumpyRunner(graph)(arrays)
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    stages = split_graph(graph, lambda node: position[id(node)] // size)
    run = StagedRun(graph, stages, arrays)
    for number, stage in enumerate(stages):
        run.run_stage(number, NumpyRunner(stage.graph))
    for p, w in enumerate(want):
        np.testing.assert_array_equal(run.output(p), w)


def test_output_groups_make_each_group_available_in_its_stage():
    graph, arrays = _graph()
    groups = [[2], [0], [1]]
    runner = StagedBackwardRunner(graph, groups, "numpy", "cpu", "default")
    seen = [sorted(p for p, _ in stage) for stage in runner.run_in_stages(arrays, "cpu")]
    assert seen == [[2], [0], [1]]
    for got, want in zip(runner(arrays), NumpyRunner(graph)(arrays)):
        np.testing.assert_array_equal(got, want)


def test_a_stage_reading_a_later_stage_is_refused():
    graph, _ = _graph()
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    with pytest.raises(ValueError, match="reads a value from the later stage"):
        split_graph(graph, lambda node: -position[id(node)])
    assert stages_by_output_groups(graph, [[0]])(graph.nodes[0]) == 0


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(4, 8)
        self.second = nn.Linear(8, 3)

    def forward(self, x):
        # Second layer's gradients first (as DDP's buckets run, in reverse order of the parameters).
        mark_backward_stages([list(self.second.parameters()), list(self.first.parameters())])
        return self.second(tf.tanh(self.first(x)))


def test_compiled_backward_hands_gradients_over_stage_by_stage(backend):
    tf.manual_seed(0)
    model = TwoLayer().double()
    reference = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    with torch.no_grad():
        for theirs, ours in zip(reference.parameters(), model.parameters()):
            theirs.copy_(torch.from_numpy(ours.detach().numpy()))
    compiled = tf.compile(model, backend=backend)
    x = RNG.standard_normal((6, 4))
    seen_at_hook = {}
    for name, p in model.named_parameters():
        p.register_post_accumulate_grad_hook(
            lambda t, name=name: seen_at_hook.setdefault(
                name, sorted(n for n, q in model.named_parameters() if q.grad is not None)))
    (compiled(tf.tensor(x)) ** 2).sum().backward()
    (reference(torch.from_numpy(x)) ** 2).sum().backward()
    # When the second layer's hooks ran, the first layer's gradients did not exist yet.
    assert seen_at_hook["second.weight"] == ["second.bias", "second.weight"]
    assert seen_at_hook["first.weight"] == ["first.bias", "first.weight", "second.bias", "second.weight"]
    entry = next(iter(compiled.jit_function.entries.values()))
    assert isinstance(entry.backward_runner, StagedBackwardRunner) and len(entry.backward_runner.stages) == 2
    for (name, ours), theirs in zip(model.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, err_msg=name)
