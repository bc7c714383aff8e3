"""tritonflow.nn: the basic layers — Linear, Embedding, norms, Dropout, Flatten and activations.

Framework stage. Each layer owns its parameters and calls a composite from nn.functional, so
eager and traced runs share one definition. Initialisation follows PyTorch.
"""
from __future__ import annotations

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.nn import functional as F
from tritonflow.nn import init
from tritonflow.nn.modules import Module
from tritonflow.nn.parameter import Parameter


def _empty(shape, device, dtype):
    dtype = D.as_dtype(dtype) if dtype is not None else D.DEFAULT_FLOAT
    if not dtype.is_floating_point:
        raise DTypeError(f"parameters must be floating point, got {dtype.name}")
    return T.zeros(tuple(shape), dtype=dtype, device=device)


class Identity(Module):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, x):
        return x


class WeightAndBias(Module):
    """A layer with a `weight` whose first dim is its outputs and an optional `bias`, both initialised
    as PyTorch's Linear and Conv2d do (U(-1/sqrt(fan_in), 1/sqrt(fan_in)))."""

    def _add_weight_and_bias(self, weight_shape: tuple, bias: bool, device, dtype) -> None:
        self.weight = Parameter(_empty(weight_shape, device, dtype))
        if bias:
            self.bias = Parameter(_empty((weight_shape[0],), device, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.linear_default_(self.weight, self.bias)


class Linear(WeightAndBias):
    """y = x @ weight.T + bias; weight (out_features, in_features), both U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self._add_weight_and_bias((out_features, in_features), bias, device, dtype)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table of `num_embeddings` rows, N(0, 1) initialised; `padding_idx`'s row stays zero."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 device=None, dtype=None) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ShapeError(f"Embedding: padding_idx {padding_idx} out of range for {num_embeddings} rows")
            padding_idx = padding_idx % num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.weight = Parameter(_empty((num_embeddings, embedding_dim), device, dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            from tritonflow.autograd import no_grad
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, indices):
        weight = self.weight
        if self.padding_idx is not None:
            # The padding row gets no gradient (as in PyTorch): read it through a detached copy.
            rows = T.iota((self.num_embeddings, 1), 0, device=weight.device)
            weight = T.where(rows == self.padding_idx, weight.detach(), weight)
        return F.embedding(indices, weight)

    def extra_repr(self) -> str:
        extra = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{extra}"


def _shape_tuple(normalized_shape) -> tuple:
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


class _Normalization(Module):
    """LayerNorm and RMSNorm: the normalized shape, eps, and when affine a weight of ones (and, for a
    layer with a bias, a bias of zeros). `bias=None`: the layer has no bias parameter at all."""

    def __init__(self, normalized_shape, eps, elementwise_affine: bool, bias: bool | None, device, dtype) -> None:
        super().__init__()
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(T.ones(self.normalized_shape, dtype=_empty((), device, dtype).dtype,
                                           device=device))
        else:
            self.register_parameter("weight", None)
        if bias is not None:
            if bias and elementwise_affine:
                self.bias = Parameter(_empty(self.normalized_shape, device, dtype))
            else:
                self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class LayerNorm(_Normalization):
    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__(normalized_shape, eps, elementwise_affine, bias, device, dtype)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class RMSNorm(_Normalization):
    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__(normalized_shape, eps, elementwise_affine, None, device, dtype)

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)


class Dropout(Module):
    """Zero each element with probability p while training, scaling the rest by 1/(1-p)."""

    _repr_fields = ("p",)

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ShapeError(f"Dropout: probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)


class Flatten(Module):
    _repr_fields = ("start_dim", "end_dim")

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x):
        return T.flatten(x, self.start_dim, self.end_dim)


class ReLU(Module):
    def forward(self, x):
        return T.relu(x)


class GELU(Module):
    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    def forward(self, x):
        return F.silu(x)


class Tanh(Module):
    def forward(self, x):
        return T.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return T.sigmoid(x)


class Softmax(Module):
    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)
