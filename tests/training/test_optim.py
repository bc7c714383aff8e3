"""Optimizers, schedules and clipping against torch.optim (float64), plus the compiled-update contract."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tritonflow as tf
from tritonflow import AutogradError, ShapeError, nn
from tests.helpers import assert_close

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, eps=1e-6)),
]


def make_pair(seed=0):
    tf.manual_seed(seed)
    ours = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_optimizer_matches_torch_over_steps(name, kwargs):
    ours, theirs = make_pair()
    opt = getattr(tf.optim, name)(ours.parameters(), **kwargs)
    topt = getattr(torch.optim, name)(theirs.parameters(), **kwargs)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal((8, 4))
        opt.zero_grad()
        topt.zero_grad()
        (ours(tf.tensor(x)) ** 2).mean().backward()
        (theirs(torch.tensor(x)) ** 2).mean().backward()
        opt.step()
        topt.step()
    for (n, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        assert_close(p.detach(), tp.detach(), "float64", rtol_scale=100, msg=n)
    # All parameters of the group update in one compiled graph, compiled once for all steps.
    info = opt._jitted.cache_info()
    assert info.misses == 1 and info.hits == 4


def test_param_groups_and_lr_change_do_not_recompile():
    ours, _ = make_pair()
    opt = tf.optim.SGD([{"params": ours[0].parameters()}, {"params": ours[2].parameters(), "lr": 0.5}], lr=0.1)
    w0 = ours[2].weight.detach().numpy().copy()
    ours(tf.randn(3, 4, dtype="float64")).sum().backward()
    g = ours[2].weight.grad.numpy().copy()
    opt.step()
    assert_close(ours[2].weight.detach(), w0 - 0.5 * g, "float64")
    opt.param_groups[1]["lr"] = 0.25
    w1 = ours[2].weight.detach().numpy().copy()
    opt.step()
    assert_close(ours[2].weight.detach(), w1 - 0.25 * g, "float64")
    info = opt._jitted.cache_info()
    assert (info.misses, info.hits) == (2, 2)  # one graph per group (their shapes differ); lr change: no recompile


def test_failed_step_changes_no_parameter():
    ours, _ = make_pair()
    opt = tf.optim.Adam(ours.parameters())
    ours(tf.randn(3, 4, dtype="float64")).sum().backward()
    ours[2].bias.grad = tf.zeros(5, dtype="float64")  # wrong shape, on the last parameter
    before = [p.detach().numpy().copy() for p in ours.parameters()]
    with pytest.raises(ShapeError, match="parameter 3 has shape \\(2,\\).*\\(5,\\)"):
        opt.step()
    for b, p in zip(before, ours.parameters()):
        np.testing.assert_array_equal(b, p.detach().numpy())
    assert float(opt.state[ours[0].weight]["step"]) == 0.0


def test_optimizer_rejects_non_leaf_tensors():
    w = tf.randn(3, requires_grad=True)
    with pytest.raises(AutogradError, match="leaf.*parameter 1"):
        tf.optim.SGD([w, w * 2], lr=0.1)
    with pytest.raises(tf.TritonflowError, match="more than one"):
        tf.optim.SGD([w, w], lr=0.1)


def test_optimizer_state_dict_round_trip(tmp_path):
    ours, _ = make_pair()
    opt = tf.optim.AdamW(ours.parameters(), lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        ours(tf.randn(3, 4, dtype="float64")).sum().backward()
        opt.step()
    tf.save(opt.state_dict(), tmp_path / "opt.safetensors")
    clone, _ = make_pair()
    clone.load_state_dict(ours.state_dict())
    opt2 = tf.optim.AdamW(clone.parameters(), lr=0.5)
    opt2.load_state_dict(tf.load(tmp_path / "opt.safetensors"))
    assert opt2.param_groups[0]["lr"] == 0.01
    x = tf.randn(3, 4, dtype="float64")
    for model, o in ((ours, opt), (clone, opt2)):
        o.zero_grad()
        model(x).sum().backward()
        o.step()
    for a, b in zip(ours.parameters(), clone.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_cosine_warmup_schedule():
    p = nn.Parameter(tf.zeros(1))
    opt = tf.optim.SGD([p], lr=1.0)
    sched = tf.optim.lr_scheduler.CosineWarmupLR(opt, warmup_steps=4, total_steps=12, min_lr_ratio=0.1)
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(13):
        sched.step()
        seen.append(sched.get_last_lr()[0])
    want = [s / 4 for s in range(4)] + [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1, (s - 4) / 8)))
                                        for s in range(4, 14)]
    np.testing.assert_allclose(seen, want, rtol=1e-12)
    # The compiled update reads the scheduled lr.
    p.grad = tf.ones(1)
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), [-want[-1]], rtol=1e-6)


def test_cosine_annealing_matches_torch():
    p, tp = nn.Parameter(tf.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt, topt = tf.optim.SGD([p], lr=0.3), torch.optim.SGD([tp], lr=0.3)
    s = tf.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7, eta_min=0.01)
    ts = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=7, eta_min=0.01)
    for _ in range(9):
        topt.step()
        s.step()
        ts.step()
        assert s.get_last_lr()[0] == pytest.approx(ts.get_last_lr()[0], rel=1e-12)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clip_grad_norm_matches_torch(norm_type):
    ours, theirs = make_pair()
    x = np.random.default_rng(3).standard_normal((5, 4))
    (ours(tf.tensor(x)) ** 2).sum().backward()
    (theirs(torch.tensor(x)) ** 2).sum().backward()
    total = tf.nn.utils.clip_grad_norm_(ours.parameters(), 0.5, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.5, norm_type)
    assert float(total) == pytest.approx(float(ttotal), rel=1e-10)
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        assert_close(p.grad, tp.grad, "float64")


def test_clip_grad_norm_nonfinite_error_leaves_grads():
    p = nn.Parameter(tf.zeros(2))
    p.grad = tf.tensor([float("inf"), 1.0])
    with pytest.raises(AutogradError, match="non-finite"):
        tf.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert p.grad.numpy()[1] == 1.0
