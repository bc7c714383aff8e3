"""A jitted training step that closes over a global model, optimizer and scheduler (issue 15).

The whole step (zero_grad, forward, backward, clip_grad_norm_, optimizer step, scheduler step) is
one compiled graph: after N steps parameters, gradients and optimizer state equal eager training
of the same code (float32, rel 1e-5) and torch's float64 training (rel 1e-4), compiled once. Also:
tritonflow.compile(model) inside the step, freezing and unfreezing, zero_grad after step, the
scheduler before the update, gradients accumulated across calls, a model passed in with the
optimizer closed over, and a step with no tensor arguments at all.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tritonflow as tf
import tritonflow.nn.functional as F
from tests.training.test_compiled_train_step import make as make_state

STEPS = 6


def warmup_cosine(step: int) -> float:
    return (step + 1) / 3 if step < 2 else 0.5 * (1 + math.cos(math.pi * min(1.0, (step - 2) / 6)))


def make(opt_name: str):
    """The model and optimizer of test_compiled_train_step, with a schedule torch has too."""
    return make_state(opt_name, schedule=lambda opt: tf.optim.lr_scheduler.LambdaLR(opt, warmup_cosine))


def batches(count: int = STEPS, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((10, 6)).astype(np.float32), rng.integers(0, 3, 10)) for _ in range(count)]


def closed_over_step(model, opt, sched, use_compiled: bool = False):
    """The step a user writes: everything it touches comes from the enclosing scope."""
    forward = tf.compile(model) if use_compiled else model

    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(forward(x), y)
        loss.backward()
        tf.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        return loss
    return train_step


def torch_reference(model, opt_name: str, data) -> tuple:
    """torch in float64, same weights, same step: the independent reference."""
    layers = [torch.nn.Linear(6, 12), torch.nn.GELU(), torch.nn.LayerNorm(12), torch.nn.Linear(12, 3)]
    net = torch.nn.Sequential(*layers).double()
    with torch.no_grad():
        for (name, p) in net.named_parameters():
            p.copy_(torch.from_numpy(dict(model.named_parameters())[name].detach().numpy().astype(np.float64)))
    if opt_name == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=0.02, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine)
    losses = []
    for x, y in data:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x).double()), torch.from_numpy(y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return net, losses


def eager_and_jitted(backend: str, opt_name: str, build, drive) -> list:
    """The same training twice from the same start: `build(model, opt, sched)` makes the step
    function, `drive(fn, model, opt, sched)` calls it; the first run eagerly, the second jitted.
    Returns [(model, opt, sched, fn)] for both."""
    runs = []
    for jitted in (False, True):
        model, opt, sched = make(opt_name)
        fn = build(model, opt, sched)
        if jitted:
            fn = tf.jit(fn, backend=backend)
        drive(fn, model, opt, sched)
        runs.append((model, opt, sched, fn))
    return runs


def feed(count: int = STEPS, seed: int = 0):
    """A `drive` calling the step on `count` batches."""
    def drive(fn, *state):
        for x, y in batches(count, seed):
            fn(tf.tensor(x), tf.tensor(y))
    return drive


def update_step(model, opt, sched):
    """zero_grad, forward, backward, update: the plainest closed-over step."""
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def assert_same_parameters(runs: list, grads: bool = True) -> None:
    for p, q in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-5, atol=1e-6)
        if grads:
            assert (p.grad is None) == (q.grad is None)
            if p.grad is not None:
                np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-6)


def assert_same_training(a, b, rtol: float = 1e-5) -> None:
    """Parameters, gradients and optimizer state of two (model, opt, sched) triples agree."""
    for (name, p), q in zip(a[0].named_parameters(), b[0].parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=rtol, atol=1e-6, err_msg=name)
        if p.grad is None:
            assert q.grad is None, name
        else:
            np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=rtol, atol=1e-6, err_msg=name)
    for sa, sb in zip(a[1].state.values(), b[1].state.values()):
        assert set(sa) == set(sb)
        for key in sa:
            np.testing.assert_allclose(sb[key].numpy(), sa[key].numpy(), rtol=rtol, atol=1e-6, err_msg=key)
    assert a[2].last_epoch == b[2].last_epoch and a[2].get_last_lr() == b[2].get_last_lr()
    assert [g["lr"] for g in a[1].param_groups] == [g["lr"] for g in b[1].param_groups]


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
@pytest.mark.parametrize("use_compiled", [False, True], ids=["model", "compiled_model"])
def test_closed_over_step_trains_as_eager_and_torch_compiled_once(backend, opt_name, use_compiled):
    eager, compiled = make(opt_name), make(opt_name)
    data = batches()
    torch_net, torch_losses = torch_reference(compiled[0], opt_name, data)
    params_before = [id(p) for p in compiled[0].parameters()]
    eager_step = closed_over_step(*eager)
    step = tf.jit(closed_over_step(*compiled, use_compiled=use_compiled), backend=backend)
    for (x, y), want in zip(data, torch_losses):
        got = float(step(tf.tensor(x), tf.tensor(y)))
        expected = float(eager_step(tf.tensor(x), tf.tensor(y)))
        assert got == pytest.approx(expected, rel=1e-5)
        assert got == pytest.approx(want, rel=1e-4)
    assert_same_training(eager, compiled)
    for (name, p), q in zip(torch_net.named_parameters(), compiled[0].parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
    assert step.cache_info() == (STEPS - 1, 1, 1), step.recompile_reasons
    assert [id(p) for p in compiled[0].parameters()] == params_before  # written back in place
    graph = next(iter(step.entries.values())).graph
    assert len(graph.outputs) > 1 + 6  # the loss, then parameters, state and gradients written back


def test_compiled_module_inside_the_step_is_inlined_not_compiled(backend):
    model, opt, sched = make("adamw")
    cmodel = tf.compile(model)
    step = tf.jit(update_step(cmodel, opt, sched), backend=backend)
    feed(3)(step)
    assert step.cache_info().misses == 1 and cmodel.cache_info().misses == 0
    x, y = batches(1)[0]
    names = [n.name for n in tf.explain(step, tf.tensor(x), tf.tensor(y)).final_graph.inputs]
    assert names[2:4] == ["model.0.weight", "model.0.bias"], names
    model.eval()                      # the flags the inlined module baked in are guarded
    step(tf.tensor(x), tf.tensor(y))
    assert step.recompile_reasons == ["model: the training flags of its modules changed from "
                                      "(True, True, True, True, True) to (False, False, False, False, False)"]


@pytest.mark.parametrize("pass_model", [False, True], ids=["closed_over", "model_argument"])
def test_zero_grad_after_the_update(backend, pass_model):
    # The known bug: a step zeroing the gradients after opt.step() failed on its second call with
    # "backward through <GradNode div> a second time": jit took the missing gradient outputs for a
    # function that needs a compiled backward, traced it again and ran backward through the
    # loss a second time. A backward pass inside the trace now tells jit the function handles its
    # own gradients.
    def step(model, opt, x, y):
        loss = F.mse_loss(model(x), y)
        for action in (loss.backward, opt.step, opt.zero_grad):   # zero_grad last
            action()
        return loss

    def build(model, opt, sched):
        return step if pass_model else (lambda x, y: step(model, opt, x, y))

    losses = []

    def drive(fn, model, opt, sched):
        rng = np.random.default_rng(3)
        losses.append([])
        for _ in range(4):
            x = tf.tensor(rng.standard_normal((8, 6)), dtype="float32")
            y = tf.tensor(rng.standard_normal((8, 3)), dtype="float32")
            losses[-1].append(float(fn(model, opt, x, y) if pass_model else fn(x, y)))

    runs = eager_and_jitted(backend, "sgd", build, drive)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    assert_same_parameters(runs)
    assert all(p.grad is None for p in runs[1][0].parameters())
    assert runs[1][3].cache_info().misses == 1


def test_freezing_and_unfreezing_retraces_and_keeps_both_graphs(backend):
    def drive(fn, model, *state):
        for k, (x, y) in enumerate(batches(6)):
            frozen = k in (2, 3)
            model[0].requires_grad_(not frozen)
            before = model[0].weight.detach().numpy().copy()
            fn(tf.tensor(x), tf.tensor(y))
            assert np.array_equal(model[0].weight.detach().numpy(), before) == frozen

    runs = eager_and_jitted(backend, "adamw", update_step, drive)
    assert_same_parameters(runs)
    fn = runs[1][3]
    # frozen at call 2 (a retrace), unfrozen at call 4: the first graph again, no third compile
    assert fn.cache_info() == (4, 2, 2)
    assert fn.recompile_reasons == ["captured model.0.weight: requires_grad changed from True to False"]


@pytest.mark.parametrize("pass_optimizer", [False, True], ids=["closed_over", "optimizer_argument"])
def test_scheduler_before_the_update_runs_before_the_graph(backend, pass_optimizer):
    # The graph has not read the rate when sched.step() runs, so jit runs it before the graph; the
    # same when the optimizer is an argument (its rate tensors are then argument inputs).
    def build(model, opt, sched):
        def step(x, y, *passed):
            sched.step()              # unusual order: this update must use the new rate
            return update_step(model, passed[0] if passed else opt, sched)(x, y)
        return step

    def drive(fn, model, opt, sched):
        for x, y in batches(5):
            fn(tf.tensor(x), tf.tensor(y), *([opt] if pass_optimizer else []))

    runs = eager_and_jitted(backend, "sgd", build, drive)
    assert_same_training(runs[0][:3], runs[1][:3])
    assert runs[1][3].cache_info().misses == 1


def test_reading_the_rate_again_after_the_scheduler_step_is_an_error():
    model, opt, sched = make("sgd")
    update = update_step(model, opt, sched)

    @tf.jit
    def step(x, y):
        loss = update(x, y)
        sched.step()
        opt.step()   # would need the rate the scheduler sets after the graph
        return loss

    x, y = batches(1)[0]
    with pytest.raises(tf.TraceError, match=r"(?s)^sched\.step\(\) runs after the compiled graph.*"
                                            r"opt\.param_groups\.0\.lr.*test_closed_over_step\.py:\d+"):
        step(tf.tensor(x), tf.tensor(y))
    assert sched.last_epoch == 0 and model[0].weight.grad is None   # nothing happened


def test_gradients_accumulate_across_calls_as_eager(backend):
    def build(model, opt, sched):
        def accumulate(x, y):
            F.cross_entropy(model(x), y).backward()   # no zero_grad: .grad accumulates
        return accumulate

    runs = eager_and_jitted(backend, "sgd", build, feed(4))
    assert_same_parameters(runs)
    fn = runs[1][3]
    # The first call traced with no gradients present; from the second on they are graph inputs
    # (the first guard checked is the first gradient backward reached: the last layer's).
    assert fn.cache_info() == (2, 2, 2)
    assert fn.recompile_reasons == ["model.3.bias.grad is a tensor now (it was None when traced)"]


def test_model_argument_with_the_optimizer_closed_over(backend):
    # The optimizer reaches the model's parameters through its own lists: they are the argument's
    # tensors, so its update reads the gradients the backward left on the argument.
    def build(model, opt, sched):
        return lambda net, x, y: update_step(net, opt, sched)(x, y)

    def drive(fn, model, *state):
        for x, y in batches(4):
            fn(model, tf.tensor(x), tf.tensor(y))

    runs = eager_and_jitted(backend, "adamw", build, drive)
    assert_same_training(runs[0][:3], runs[1][:3])
    assert runs[1][3].cache_info().misses == 1


def test_a_step_without_tensor_arguments(backend):
    # torch.compile's compiled-optimizer pattern: gradients computed eagerly, the update (and the
    # schedule) jitted with nothing passed in; the gradients are captured as `param.grad`.
    def build(model, opt, sched):
        def update():
            opt.step()
            sched.step()
        return update

    def drive(fn, model, opt, sched):
        for x, y in batches(4):
            opt.zero_grad()
            F.cross_entropy(model(tf.tensor(x)), tf.tensor(y)).backward()
            fn()

    runs = eager_and_jitted(backend, "adamw", build, drive)
    assert_same_training(runs[0][:3], runs[1][:3])
    fn = runs[1][3]
    assert fn.cache_info().misses == 1
    names = [n.name for n in tf.explain(fn).final_graph.inputs]
    # The function reaches the parameters only through the optimizer: named by where it keeps them.
    assert {"opt.param_groups.0.params.0", "opt.param_groups.0.params.0.grad", "opt.state.0.exp_avg"} <= set(names)


def test_changing_the_rate_by_hand_is_read_without_recompiling(backend):
    def drive(fn, model, opt, sched):
        for k, (x, y) in enumerate(batches(4)):
            opt.param_groups[0]["lr"] = 0.1 / (k + 1)
            fn(tf.tensor(x), tf.tensor(y))

    runs = eager_and_jitted(backend, "sgd", update_step, drive)
    assert_same_parameters(runs)
    fn, opt = runs[1][3], runs[1][1]
    assert fn.cache_info().misses == 1
    opt.param_groups[0]["nesterov"] = False          # a flag that shapes the update: retrace
    feed(1)(fn)
    assert fn.cache_info().misses == 2
    assert fn.recompile_reasons[-1] == "opt: its parameter groups and the flags that shape its update changed"
