"""F.conv2d, F.conv1d, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d and F.interpolate against torch.nn.functional on
CPU: values and gradients in float64, eagerly and jitted on both backends, the nn modules calling
them, and the errors for settings that do not apply."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow import nn

RNG = np.random.default_rng(31)
X = RNG.standard_normal((2, 3, 7, 9))
W_EVEN = RNG.standard_normal((4, 3, 2, 4))
X1 = RNG.standard_normal((2, 3, 10))
W1 = RNG.standard_normal((5, 3, 4))

# name -> (ours, torch's, inputs): every call takes the same arrays.
CASES = {
    "conv2d_same_even": (lambda x, w: F.conv2d(x, w, padding="same", dilation=(1, 2)),
                         lambda x, w: TF.conv2d(x, w, padding="same", dilation=(1, 2)), [X, W_EVEN]),
    "conv2d_strided": (lambda x, w: F.conv2d(x, w, stride=2, padding=(1, 0)),
                       lambda x, w: TF.conv2d(x, w, stride=2, padding=(1, 0)), [X, W_EVEN]),
    "conv1d": (lambda x, w: F.conv1d(x, w, stride=2, padding=1), lambda x, w: TF.conv1d(x, w, stride=2, padding=1),
               [X1, W1]),
    "max_pool_ceil": (lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True),
                      lambda x: TF.max_pool2d(x, 3, 2, 1, ceil_mode=True), [X]),
    "max_pool_dilated": (lambda x: F.max_pool2d(x, 2, 1, 0, dilation=2), lambda x: TF.max_pool2d(x, 2, 1, 0, dilation=2),
                         [X]),
    "avg_pool_ceil_pad": (lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
                          lambda x: TF.avg_pool2d(x, 3, 2, 1, ceil_mode=True), [X]),
    "avg_pool_exclude_pad": (lambda x: F.avg_pool2d(x, 2, 3, 1, ceil_mode=True, count_include_pad=False),
                             lambda x: TF.avg_pool2d(x, 2, 3, 1, ceil_mode=True, count_include_pad=False), [X]),
    "nearest_size": (lambda x: F.interpolate(x, size=(11, 5)), lambda x: TF.interpolate(x, size=(11, 5)), [X]),
    "nearest_exact_scale": (lambda x: F.interpolate(x, scale_factor=(1.7, 0.6), mode="nearest-exact"),
                            lambda x: TF.interpolate(x, scale_factor=(1.7, 0.6), mode="nearest-exact"), [X]),
    "bilinear_corners": (lambda x: F.interpolate(x, size=(5, 12), mode="bilinear", align_corners=True),
                         lambda x: TF.interpolate(x, size=(5, 12), mode="bilinear", align_corners=True), [X]),
    "bilinear_scale": (lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"),
                       lambda x: TF.interpolate(x, scale_factor=1.5, mode="bilinear"), [X]),
    "bilinear_down": (lambda x: F.interpolate(x, size=(3, 4), mode="bilinear", align_corners=False),
                      lambda x: TF.interpolate(x, size=(3, 4), mode="bilinear", align_corners=False), [X]),
    "adaptive_avg_overlapping": (lambda x: F.adaptive_avg_pool2d(x, (4, 5)), lambda x: TF.adaptive_avg_pool2d(x, (4, 5)),
                                 [X]),
    "adaptive_avg_keep_h": (lambda x: F.adaptive_avg_pool2d(x, (None, 3)),
                            lambda x: TF.adaptive_avg_pool2d(x, (None, 3)), [X]),
    "linear": (lambda x: F.interpolate(x, size=7, mode="linear"), lambda x: TF.interpolate(x, size=7, mode="linear"),
               [X1]),
}
TRITON = ("conv2d_same_even", "max_pool_ceil", "avg_pool_exclude_pad", "bilinear_scale", "nearest_exact_scale",
          "adaptive_avg_overlapping")
PARAMS = [pytest.param(mode, name, id=f"{mode}-{name}") for name in CASES for mode in ("eager", "numpy")] + [
    pytest.param("triton", name, id=f"triton-{name}") for name in TRITON]


@pytest.mark.parametrize("mode, name", PARAMS)
def test_matches_torch_values_and_gradients(mode, name):
    ours, theirs, arrays = CASES[name]
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    want = theirs(*tensors)
    weight = RNG.standard_normal(tuple(want.shape))
    (want * torch.from_numpy(weight)).sum().backward()

    def loss(*xs):
        out = ours(*xs)
        return out, (out * tf.tensor(weight)).sum()
    inputs = [tf.tensor(a, requires_grad=True) for a in arrays]
    got, total = loss(*inputs) if mode == "eager" else tf.jit(loss, backend=mode)(*inputs)
    total.backward()
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours_in, theirs_in in zip(inputs, tensors):
        np.testing.assert_allclose(ours_in.grad.numpy(), theirs_in.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_float32_interpolation_positions_as_torch_computes_them():
    """Source positions and weights in float32 as torch's kernels compute them, so float32 results
    agree to rounding, for factors whose reciprocal is not exact."""
    x = RNG.standard_normal((1, 2, 13, 11)).astype(np.float32)
    for kwargs in (dict(scale_factor=(2.3, 0.7), mode="bilinear"), dict(size=(29, 3), mode="nearest"),
                   dict(scale_factor=1.9, mode="nearest-exact"), dict(size=(6, 17), mode="bilinear", align_corners=True)):
        got = F.interpolate(tf.from_numpy(x), **kwargs).numpy()
        np.testing.assert_allclose(got, TF.interpolate(torch.from_numpy(x), **kwargs).numpy(), rtol=2e-6, atol=1e-6,
                                   err_msg=str(kwargs))


def test_max_pool_indices_and_modules():
    x = np.round(RNG.standard_normal((2, 3, 7, 9)) * 2) / 2  # ties: the first maximum's position
    out, indices = F.max_pool2d(tf.tensor(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    want, want_indices = TF.max_pool2d(torch.tensor(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(indices.numpy(), want_indices.numpy())
    np.testing.assert_array_equal(out.numpy(), want.numpy())
    pool = nn.MaxPool2d(2, return_indices=True)
    np.testing.assert_array_equal(pool(tf.tensor(x))[1].numpy(), torch.nn.MaxPool2d(2, return_indices=True)(
        torch.tensor(x))[1].numpy())
    up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
    np.testing.assert_allclose(up(tf.tensor(x)).numpy(), torch.nn.Upsample(scale_factor=2, mode="bilinear",
                                                                           align_corners=True)(torch.tensor(x)).numpy(),
                               rtol=1e-12, atol=1e-12)
    unbatched = X[0].astype(np.float32)  # (C, H, W), as torch accepts
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(2)(tf.tensor(unbatched)).numpy(),
                               torch.nn.AdaptiveAvgPool2d(2)(torch.tensor(unbatched)).numpy(), rtol=1e-6, atol=1e-6)
    conv = nn.Conv1d(3, 2, 3, padding=1)
    theirs = torch.nn.Conv1d(3, 2, 3, padding=1).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(conv.weight.detach().numpy().astype(np.float64)))
        theirs.bias.copy_(torch.from_numpy(conv.bias.detach().numpy().astype(np.float64)))
    np.testing.assert_allclose(conv(tf.tensor(X1.astype(np.float32))).detach().numpy(),
                               theirs(torch.tensor(X1)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_settings_that_do_not_apply_raise():
    x = tf.tensor(X)
    with pytest.raises(tf.InvalidValueError, match="align_corners can only be set with the interpolating modes"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(tf.InvalidValueError, match="give exactly one of size and scale_factor"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(tf.ShapeError, match="mode 'bilinear' needs a 4-D"):
        F.interpolate(tf.tensor(X1), size=3, mode="bilinear")
    with pytest.raises(tf.UnsupportedError, match="mode 'bicubic' is not supported"):
        F.interpolate(x, size=3, mode="bicubic")
    with pytest.raises(tf.UnsupportedError, match="padding='same' needs stride 1"):
        F.conv2d(x, tf.tensor(W_EVEN), stride=2, padding="same")
    with pytest.raises(tf.DTypeError, match="adaptive_avg_pool2d: needs a floating point input, got int64"):
        F.adaptive_avg_pool2d(tf.ones((1, 1, 4, 4), dtype=tf.int64), 2)
    with pytest.raises(tf.ShapeError, match="output_size must be a positive int, None or a pair"):
        F.adaptive_avg_pool2d(x, (2, 0))
    with pytest.raises(tf.ShapeError, match="conv2d: input has 3 channels"):
        F.conv2d(x, tf.ones((4, 2, 3, 3)))
