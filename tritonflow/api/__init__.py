"""The functions a user calls as `tritonflow.<name>` (and that Tensor methods call)."""
from tritonflow.api.convert import cast, from_dlpack, from_numpy, is_tensor, tensor, to  # noqa: F401
from tritonflow.api.creation import (arange, empty, empty_like, eye, full, full_like, iota, linspace,  # noqa: F401
                                     ones, ones_like, zeros, zeros_like)
from tritonflow.api.elementwise import (abs, add, bitwise_and, bitwise_not, bitwise_or, bitwise_xor,  # noqa: F401
                                        ceil, clamp, clip, cos, div, divide, eq, equal, erf, exp, exp2,
                                        expm1, floor, floor_divide, fmod, ge, greater, gt, isfinite, isinf,
                                        isnan, le, less, log, log1p, log2, logical_and, logical_not,
                                        logical_or, logical_xor, lt, masked_fill, maximum, minimum, mul,
                                        multiply, ne, neg, pow, reciprocal, relu, remainder, round, rsqrt,
                                        sigmoid, sign, sin, sqrt, square, sub, subtract, tanh, true_divide,
                                        type_as, where)
from tritonflow.api.linalg import bmm, dot, matmul, mm  # noqa: F401
from tritonflow.api.reduction import (all, amax, amin, any, argmax, argmin, cumsum, logsumexp, max,  # noqa: F401
                                      mean, min, prod, reduce_sum, std, sum, var)
from tritonflow.api.random import (bernoulli, manual_seed, multinomial, rand, rand_like, randint,  # noqa: F401
                                   randint_like, randn, randn_like, randperm, seed)
from tritonflow.api.softmax import log_softmax, softmax  # noqa: F401
from tritonflow.api.sorting import argsort, kthvalue, msort, sort, topk  # noqa: F401
from tritonflow.api.shape import (broadcast_tensors, broadcast_to, cat, chunk, clone, concatenate,  # noqa: F401
                                  contiguous, expand, expand_as, flatten, flip, gather, index_add, index_copy,
                                  index_select, narrow, pad, pad_primitive, permute, repeat, repeat_interleave,
                                  reshape, scatter, scatter_add, slice_primitive, split, squeeze, stack, swapaxes,
                                  take_along_dim, tile, transpose, tril, triu, unbind, unflatten, unsqueeze, view)
from tritonflow.api.indexing import getitem, index_put  # noqa: F401

# The core's vjp rules and the layers below this one (Tensor, autograd) call these functions
# through the namespace installed here (tritonflow/ops/lazy_api.py), never by importing this package.
import sys as _sys  # noqa: E402

from tritonflow.dispatch import apply as _apply  # noqa: E402
from tritonflow.ops import lazy_api as _lazy_api  # noqa: E402

_lazy_api.install(_sys.modules[__name__], _apply)
