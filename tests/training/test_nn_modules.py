"""nn.Module bookkeeping and layers against torch.nn (float64, weights copied across)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tritonflow as tf
from tritonflow import DTypeError, ShapeError, nn
from tests.helpers import assert_close

RNG = np.random.default_rng(1)


def to_torch_state(module):
    return {k: torch.tensor(np.asarray(v.numpy(), dtype=np.float64)) for k, v in module.state_dict().items()}


def check_against_torch(ours, theirs, inputs, *, out_index=None):
    """Forward, then backward of sum(out * fixed weights): outputs, input grads and parameter grads."""
    ours = ours.double()
    theirs = theirs.double()
    theirs.load_state_dict(to_torch_state(ours))
    xs = [tf.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    txs = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    out = ours(*xs)
    tout = theirs(*txs)
    if out_index is not None:
        out, tout = out[out_index], tout[out_index]
    assert_close(out, tout, "float64", rtol_scale=100)
    w = RNG.standard_normal(tuple(tout.shape))
    (out * tf.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for x, tx in zip(xs, txs):
        if tx.requires_grad:
            assert_close(x.grad, tx.grad, "float64", rtol_scale=100)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, theirs_params[name].grad, "float64", rtol_scale=100, msg=name)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
        self.norm = nn.LayerNorm(8)
        self.register_buffer("scale", tf.ones(8))
        self.register_buffer("scratch", tf.zeros(2), persistent=False)
        self.scale_param = nn.Parameter(tf.ones(1))

    def forward(self, x):
        h = tf.relu(self.fc1(x))
        for block in self.blocks:
            h = h + block(h)
        return self.norm(h) * self.scale * self.scale_param


def test_registration_names_and_state_dict():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale_param", "fc1.weight", "fc1.bias", "blocks.0.weight", "blocks.0.bias",
                     "blocks.1.weight", "blocks.1.bias", "norm.weight", "norm.bias"]
    assert [n for n, _ in net.named_buffers()] == ["scale", "scratch"]
    keys = list(net.state_dict())
    assert "scale" in keys and "scratch" not in keys and "fc1.weight" in keys
    assert all(not v.requires_grad for v in net.state_dict().values())
    assert len(list(net.parameters())) == 9


def test_state_dict_round_trip_and_errors():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    x = tf.randn(3, 4)
    assert_close(a(x).detach(), b(x).detach(), "float32")

    bad = a.state_dict()
    bad["fc1.weight"] = tf.zeros(8, 5)
    before = b.fc1.bias.detach().numpy().copy()
    b.fc1.bias.grad = None
    with pytest.raises(ShapeError, match="fc1.weight.*\\(8, 5\\).*\\(8, 4\\)"):
        b.load_state_dict(bad)
    np.testing.assert_array_equal(b.fc1.bias.detach().numpy(), before)  # nothing was written

    bad = a.state_dict()
    bad["norm.bias"] = tf.zeros(8, dtype="float64")
    with pytest.raises(DTypeError, match="norm.bias.*float64.*float32"):
        b.load_state_dict(bad)

    missing = a.state_dict()
    del missing["norm.bias"]
    with pytest.raises(tf.TritonflowError, match="missing keys.*norm.bias"):
        b.load_state_dict(missing)
    result = b.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["norm.bias"]


def test_train_eval_zero_grad_to_dtype():
    net = Net()
    net.eval()
    assert all(not m.training for m in net.modules())
    net.train()
    assert net.blocks[1].training
    net(tf.randn(2, 4)).sum().backward()
    assert net.fc1.weight.grad is not None
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    weight = net.fc1.weight
    net.to(tf.bfloat16)
    assert net.fc1.weight is weight and weight.dtype is tf.bfloat16 and net.scale.dtype is tf.bfloat16
    with pytest.raises(DTypeError):
        net.to(tf.int32)


def test_assigning_plain_tensor_to_parameter_name_raises():
    lin = nn.Linear(2, 2)
    with pytest.raises(DTypeError, match="weight"):
        lin.weight = tf.zeros(2, 2)
    lin.weight = nn.Parameter(tf.zeros(2, 2))
    assert lin.weight.requires_grad


def test_linear_init_follows_pytorch_bounds():
    tf.manual_seed(0)
    lin = nn.Linear(50, 400)
    w = lin.weight.detach().numpy()
    bound = 1 / math.sqrt(50)
    assert w.min() >= -bound and w.max() <= bound
    # U(-b, b) has std b/sqrt(3): 20000 samples pin it to about 1%.
    assert abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound
    tf.manual_seed(0)
    again = nn.Linear(50, 400)
    np.testing.assert_array_equal(again.weight.detach().numpy(), w)  # seeded


def test_linear_and_sequential_match_torch():
    tf.manual_seed(1)
    ours = nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 3), nn.SiLU(), nn.Linear(3, 2, bias=False))
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.GELU(), torch.nn.Linear(7, 3), torch.nn.SiLU(),
                                 torch.nn.Linear(3, 2, bias=False))
    check_against_torch(ours, theirs, [RNG.standard_normal((4, 5))])


@pytest.mark.parametrize("cls", ["LayerNorm", "RMSNorm"])
def test_norms_match_torch(cls):
    ours = getattr(nn, cls)(6, eps=1e-5)
    theirs = getattr(torch.nn, cls)(6, eps=1e-5)
    with tf.no_grad():
        ours.weight.copy_(tf.tensor(RNG.standard_normal(6), dtype="float32"))
    check_against_torch(ours, theirs, [RNG.standard_normal((3, 6))])


def test_embedding_with_padding_matches_torch():
    ours = nn.Embedding(7, 3, padding_idx=2)
    theirs = torch.nn.Embedding(7, 3, padding_idx=2)
    assert np.all(ours.weight.detach().numpy()[2] == 0)
    idx = np.array([[0, 2, 5], [2, 2, 6]])
    check_against_torch(ours, theirs, [idx])


@pytest.mark.parametrize("kwargs", [dict(stride=1, padding=1), dict(stride=2, padding=0, dilation=1),
                                    dict(stride=(2, 1), padding=(1, 0), dilation=2), dict(groups=2, padding="same")])
def test_conv2d_matches_torch(kwargs):
    ours = nn.Conv2d(4, 6, 3, **kwargs)
    theirs = torch.nn.Conv2d(4, 6, 3, **kwargs)
    check_against_torch(ours, theirs, [RNG.standard_normal((2, 4, 7, 6))])


@pytest.mark.parametrize("cls, kwargs", [("MaxPool2d", dict(kernel_size=2)),
                                         ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1)),
                                         ("AvgPool2d", dict(kernel_size=2, stride=1)),
                                         ("AvgPool2d", dict(kernel_size=3, stride=2, padding=1)),
                                         ("AvgPool2d", dict(kernel_size=3, padding=1, count_include_pad=False))])
def test_pools_match_torch(cls, kwargs):
    check_against_torch(getattr(nn, cls)(**kwargs), getattr(torch.nn, cls)(**kwargs),
                        [RNG.standard_normal((2, 3, 7, 6))])


@pytest.mark.parametrize("causal", [False, True])
def test_multihead_attention_matches_torch(causal):
    ours = nn.MultiheadAttention(8, 2, batch_first=True, causal=causal)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1) if causal else None

    class Wrap(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x, x, x, attn_mask=mask)

    theirs = Wrap(theirs)
    ours_wrapped = nn.Sequential()
    ours_wrapped.add_module("inner", ours)
    ours_wrapped.forward = lambda x: ours(x)
    check_against_torch(ours_wrapped, theirs, [RNG.standard_normal((2, 5, 8))], out_index=0)


def test_dropout_train_and_eval():
    drop = nn.Dropout(0.25)
    x = tf.ones(4000)
    y = drop(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.03
    assert np.allclose(y[kept], 1 / 0.75)
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())
