"""Framework stage: the Tensor — concrete (NumPy or CUDA storage) or a proxy recording into a trace.

One class for both, so model code runs unchanged eagerly and under `jit`. Values are never
written in place: in-place operators compute a new value and rebind the tensor's storage (or
proxy node), bumping `_version`. That keeps values saved for backward intact.
"""
from __future__ import annotations

import numpy as np

from tritonflow import dtypes as D
from tritonflow.errors import AutogradError, DTypeError, TraceError, UnsupportedError
from tritonflow.ops.lazy_api import T  # the tritonflow functions, installed by tritonflow.api (above this)
from tritonflow.tracer import leaf
from tritonflow.tracer import state as trace_state


class Tensor:
    __slots__ = ("_data", "_node", "_trace", "dtype", "_shape", "device", "requires_grad", "_grad",
                 "_grad_fn", "_version", "_retains_grad", "__weakref__")

    __array_priority__ = 1000  # make NumPy defer to our reflected operators

    # ---------------------------------------------------------------- construction

    def __init__(self, data=None, dtype=None, device: str = "cpu", requires_grad: bool = False) -> None:
        if data is None:
            data = np.zeros((0,), np.float32)
        src = T.tensor(data, dtype=dtype, device=device)
        self._set_state(src._data, None, None, src.dtype, src._shape, src.device)
        self.requires_grad = bool(requires_grad)

    def _set_state(self, data, node, trace, dtype: D.DType, shape: tuple, device: str, version: int = 0) -> None:
        """Every slot, in one place: a leaf with no gradient, no autograd history."""
        self._data = data
        self._node = node
        self._trace = trace
        self.dtype = dtype
        self._shape = shape
        self.device = device
        self.requires_grad = False
        self._grad = None
        self._grad_fn = None
        self._version = version
        self._retains_grad = False

    @classmethod
    def _wrap(cls, data, dtype: D.DType, device: str = "cpu") -> "Tensor":
        t = object.__new__(cls)
        t._set_state(data, None, None, dtype, tuple(data.shape), device)
        return t

    @classmethod
    def _proxy(cls, node, ctx) -> "Tensor":
        t = object.__new__(cls)
        t._set_state(None, node, ctx, node.type.dtype, node.type.shape, getattr(ctx, "device", "cpu"))
        return t

    def _alias(self) -> "Tensor":
        """Same storage or node, new identity, no autograd history."""
        if self._node is None:
            ctx = trace_state.current()
            if ctx is not None and ctx.book.is_outside(self):
                # A tensor from outside a trace stands for its graph value there: a detached view
                # of it, or what a backward rule saves, must be that value (read at each call),
                # not the storage read once while tracing.
                return ctx.shadow_of(self)._alias()
        t = object.__new__(Tensor)
        t._set_state(self._data, self._node, self._trace, self.dtype, self._shape, self.device, self._version)
        return t

    # ---------------------------------------------------------------- attributes

    @property
    def shape(self) -> tuple:
        return self._shape

    def size(self, dim=None):
        if dim is None:
            return self._shape
        return self._shape[dim]

    @property
    def ndim(self) -> int:
        return len(self._shape)

    def dim(self) -> int:
        return len(self._shape)

    def numel(self):
        n = 1
        for d in self._shape:
            n = n * d
        return n

    @property
    def grad(self):
        """The gradient accumulated by backward (None until then). While a trace records, the
        gradient of an argument or a captured tensor is the trace's (tracer/captured.py)."""
        ctx = self._trace if self._node is not None else trace_state.current()
        return self._grad if ctx is None else ctx.read_grad(self)

    @grad.setter
    def grad(self, value) -> None:
        ctx = self._trace if self._node is not None else trace_state.current()
        if ctx is None or not ctx.write_grad(self, value):
            self._grad = value

    @property
    def is_proxy(self) -> bool:
        return self._node is not None

    @property
    def grad_fn(self):
        return self._grad_fn

    @property
    def is_leaf(self) -> bool:
        return self._grad_fn is None

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def T(self) -> "Tensor":
        return T.permute(self, tuple(range(self.ndim))[::-1])

    @property
    def mT(self) -> "Tensor":
        return T.transpose(self, -2, -1)

    def element_size(self) -> int:
        return self.dtype.itemsize

    # ---------------------------------------------------------------- leaving the framework

    def _concrete(self, what: str):
        if self._node is not None:
            raise TraceError(
                f"{what} needs a concrete value, but this tensor is being traced by jit: its value "
                f"is not known until the compiled function runs. Use tritonflow.where(...) for "
                f"data-dependent choices, or pass the value as a static (non-tensor) argument")
        ctx = trace_state.current()
        if ctx is not None and ctx.book.was_written(self):
            raise TraceError(f"{what} needs a concrete value, but the jitted function wrote "
                             f"{ctx.book.describe(self)} in place: its value is known only when the "
                             f"compiled function runs. Read it after the call instead")
        return self._data

    def numpy(self) -> np.ndarray:
        data = self._concrete(".numpy()")
        if self.requires_grad:
            raise AutogradError("numpy(): can't call numpy() on a tensor that requires grad; "
                                "use tensor.detach().numpy()")
        return self._host(data)

    def _host(self, data) -> np.ndarray:
        """This tensor's storage `data` as a NumPy array (copied from the GPU)."""
        if self.device != "cpu":
            from tritonflow.storage import torch_to_numpy
            return torch_to_numpy(data)
        return data

    def tolist(self):
        return self._host(self._concrete(".tolist()")).tolist()

    def item(self):
        data = self._concrete(".item()")
        if self.numel() != 1:
            raise UnsupportedError(f"item(): only one-element tensors can be converted to Python "
                                   f"scalars, got shape {self.shape}")
        if self.device != "cpu":
            from tritonflow.storage import torch_to_numpy
            data = torch_to_numpy(data)
        return np.asarray(data).reshape(()).item() if self.dtype is not D.bfloat16 else \
            float(np.asarray(data).reshape(()).astype(np.float32))

    def __bool__(self) -> bool:
        self._concrete("bool() of a tensor (an `if` or `while` on a tensor value)")
        if self.numel() != 1:
            raise UnsupportedError(f"bool(): the truth value of a tensor with {self.numel()} elements "
                                   f"is ambiguous; use .any() or .all()")
        return bool(self.item())

    def __int__(self) -> int:
        self._concrete("int() of a tensor")
        return int(self.item())

    def __float__(self) -> float:
        self._concrete("float() of a tensor")
        return float(self.item())

    def __index__(self) -> int:
        self._concrete("using a tensor as a Python index")
        if self.dtype.is_floating_point:
            raise DTypeError(f"__index__: only integer tensors can be used as a Python index, got {self.dtype.name}")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        array = self._host(self._concrete("converting a tensor to a NumPy array (np.asarray, or a NumPy "
                                          "function called on it)"))
        return array.astype(dtype) if dtype is not None else array

    def __len__(self) -> int:
        if not self._shape:
            raise DTypeError("len(): len() of a 0-d tensor is not defined")
        return self._shape[0]

    def __iter__(self):
        if not self._shape:
            raise DTypeError("iter(): iteration over a 0-d tensor is not defined")
        for i in range(self._shape[0]):
            yield self[i]

    def __hash__(self) -> int:
        return id(self)

    def __dlpack__(self, *args, **kwargs):
        """Export without copying (the DLPack protocol: np.from_dlpack, torch.from_dlpack, JAX, CuPy).

        The consumer shares this tensor's memory: writing through it changes the tensor. As in torch,
        a tensor that requires grad is not exported (export `.detach()`)."""
        if self.requires_grad:
            raise AutogradError("__dlpack__: can't export a tensor that requires grad; use tensor.detach()")
        return self._dlpack_source().__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._dlpack_source().__dlpack_device__()

    def _dlpack_source(self):
        """The storage as an object DLPack can export: NumPy has no bfloat16, so a CPU bfloat16
        tensor leaves through a torch view of the same memory."""
        data = self._concrete("__dlpack__")
        if self.device == "cpu" and self.dtype is D.bfloat16:
            from tritonflow.storage import torch_available, numpy_to_torch
            if not torch_available():
                raise UnsupportedError("__dlpack__: NumPy cannot export bfloat16 through DLPack; install torch "
                                       "(a bfloat16 tensor is then exported through a torch view of it)")
            return numpy_to_torch(data)
        return data

    def __format__(self, spec: str) -> str:
        # f"{loss:.4f}": a 0-d tensor formats as its Python number, as in PyTorch.
        if self.ndim == 0:
            return format(self.item(), spec)
        return format(str(self), spec)

    def __repr__(self) -> str:
        ctx = trace_state.current()
        if self._node is not None or ctx is not None and ctx.book.was_written(self):
            return f"Tensor(traced, shape={self.shape}, dtype={self.dtype.name})"
        array = self._host(self._data)
        body = np.array2string(np.asarray(array).astype(np.float64) if self.dtype is D.bfloat16 else array,
                               separator=", ", prefix="tensor(")
        extra = ""
        if self.dtype not in (D.float32, D.int64, D.bool_):
            extra += f", dtype={self.dtype.name}"
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ---------------------------------------------------------------- autograd

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        from tritonflow.autograd import run_backward
        run_backward(self, gradient, retain_graph)

    def detach(self) -> "Tensor":
        return self._alias()

    def detach_(self) -> "Tensor":
        self.requires_grad = False
        self._grad_fn = None
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self._grad_fn is not None and not requires_grad:
            raise AutogradError("requires_grad_(False): only leaf tensors can stop requiring grad; "
                                "use detach()")
        if requires_grad and not (self.dtype.is_floating_point):
            raise AutogradError(f"requires_grad_: only floating point tensors can require grad, "
                                f"got {self.dtype.name}")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        self._retains_grad = True

    def register_post_accumulate_grad_hook(self, hook):
        """Run `hook(self)` after each backward has accumulated this leaf's gradient into `.grad`."""
        from tritonflow.autograd_hooks import register_post_accumulate_grad_hook
        return register_post_accumulate_grad_hook(self, hook)

    # ---------------------------------------------------------------- in place

    def _assign(self, value: "Tensor") -> "Tensor":
        """Rebind this tensor to `value` (same shape, cast to this dtype): the one in-place path.

        While tracing, a tensor from outside the function (a global, a module's parameter, an
        optimizer's state) is not touched: its shadow in the trace is rebound, and jit writes the
        new value back after each call (tracer/captured.py)."""
        from tritonflow import autograd
        ctx = trace_state.current()
        if tuple(value.shape) != tuple(self.shape):
            value = _expand_for_write(self, value, ctx)
        if value.dtype is not self.dtype:
            value = T.cast(value, self.dtype)
        if self.requires_grad and self._grad_fn is None and autograd.is_grad_enabled():
            raise AutogradError("a leaf tensor that requires grad is being used in an in-place "
                                "operation; wrap it in tritonflow.no_grad() (as optimizers do)")
        target = self
        if ctx is not None:
            node = ctx.node_of(value)
            if self._node is None:
                target = ctx.shadow_of(self)
                if autograd.is_grad_enabled() and value.requires_grad:
                    raise TraceError(f"a jitted function wrote a value that requires grad into "
                                     f"{ctx.book.describe(self)} in place; gradients cannot flow through "
                                     f"a write into captured state. Do the write under tritonflow.no_grad(), "
                                     f"or keep the value in a local variable")
            if id(target) in ctx.input_tensors:
                ctx.mutated_inputs[id(target)] = target
            target._node = node
        else:
            if value._node is not None:
                raise TraceError("a traced tensor was assigned into a concrete tensor outside its trace")
            self._data = value._data
        if target is self:
            self._version += 1
        if autograd.is_grad_enabled() and value.requires_grad:
            self.requires_grad = True
            self._grad_fn = value._grad_fn
        return self

    def resize_(self, *sizes) -> "Tensor":
        """Give this tensor shape `sizes` in place: its elements in order, cut or padded with zeros
        (PyTorch leaves new elements uninitialised). Not on an argument or a captured tensor inside
        a jitted function: a compiled graph writes those back at the shapes it read them with."""
        from tritonflow import autograd
        shape = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else tuple(sizes)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise DTypeError(f"resize_: sizes must be non-negative integers, got {shape}")
        if self.requires_grad:
            raise AutogradError(f"resize_: cannot resize a tensor that requires grad (shape {tuple(self.shape)})")
        if shape == tuple(self.shape):
            return self
        ctx = trace_state.current()
        if ctx is not None and (self._node is None or id(self) in ctx.input_tensors):
            raise TraceError(f"resize_: {ctx.book.describe(self)} would change shape from {tuple(self.shape)} "
                             f"to {shape} inside a jitted function; a compiled graph writes it back at the "
                             f"shape it read. Resize it outside the function (the next call retraces) or "
                             f"return a new tensor")
        with autograd.no_grad():
            flat = T.reshape(self, (-1,))
            count, wanted = flat.shape[0], 1
            for d in shape:
                wanted *= d
            if wanted <= count:
                flat = flat[:wanted]
            else:
                flat = T.cat([flat, T.zeros((wanted - count,), dtype=self.dtype, device=self.device)])
            new = T.reshape(flat, shape)
        if self._node is not None:
            self._node = new._node
        else:
            self._data = new._data
        self._shape = shape
        self._version += 1
        return self

    def copy_(self, src) -> "Tensor":
        if not isinstance(src, Tensor):
            src = T.tensor(src, dtype=self.dtype, device=self.device)
        if src.device != self.device:
            src = src.to(self.device)
        return self._assign(src)

    def zero_(self) -> "Tensor":
        return self._assign(T.zeros_like(self))

    def fill_(self, value) -> "Tensor":
        return self._assign(T.full_like(self, value))

    def __setitem__(self, key, value) -> None:
        self._assign(T.index_put(self, key, value))

    # ---------------------------------------------------------------- conversion

    def to(self, *args, **kwargs) -> "Tensor":
        return T.to(self, *args, **kwargs)

    def cuda(self) -> "Tensor":
        return T.to(self, "cuda")

    def cpu(self) -> "Tensor":
        return T.to(self, "cpu")

    def type(self, dtype) -> "Tensor":
        return T.cast(self, D.as_dtype(dtype))

    def __getitem__(self, key) -> "Tensor":
        return T.getitem(self, key)


def _binary_method(fn, reflected: bool = False):
    if reflected:
        def method(self, other):
            return fn(other, self)
    else:
        def method(self, other):
            return fn(self, other)
    return method


def _inplace_method(fn):
    def method(self, other):
        return self._assign(fn(self, other))
    return method


_OPERATORS = {
    "add": "add", "sub": "sub", "mul": "mul", "truediv": "div", "floordiv": "floor_divide",
    "mod": "remainder", "pow": "pow", "matmul": "matmul", "and": "bitwise_and", "or": "bitwise_or",
    "xor": "bitwise_xor",
}
for _py, _fn in _OPERATORS.items():
    setattr(Tensor, f"__{_py}__", _binary_method(lambda a, b, _n=_fn: getattr(T, _n)(a, b)))
    setattr(Tensor, f"__r{_py}__", _binary_method(lambda a, b, _n=_fn: getattr(T, _n)(a, b), reflected=True))
    setattr(Tensor, f"__i{_py}__", _inplace_method(lambda a, b, _n=_fn: getattr(T, _n)(a, b)))

for _py, _fn in {"eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge"}.items():
    setattr(Tensor, f"__{_py}__", _binary_method(lambda a, b, _n=_fn: getattr(T, _n)(a, b)))

Tensor.__neg__ = lambda self: T.neg(self)
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = lambda self: T.abs(self)
Tensor.__invert__ = lambda self: T.bitwise_not(self)

# Methods that are plain calls of the tritonflow function of the same name.
TENSOR_METHODS = (
    "neg abs exp exp2 log log2 log1p expm1 sqrt rsqrt sin cos tanh sigmoid erf relu floor ceil round "
    "sign reciprocal add sub mul div floor_divide remainder pow maximum minimum eq ne lt le gt ge "
    "logical_and logical_or logical_xor logical_not clamp clip isnan isinf isfinite where "
    "sum mean prod max min amax amin argmax argmin var std logsumexp all any cumsum "
    "reshape view permute transpose expand expand_as broadcast_to squeeze unsqueeze flatten split "
    "chunk gather take_along_dim index_select tril triu matmul softmax log_softmax flip narrow "
    "contiguous clone masked_fill type_as square "
    "sort argsort topk kthvalue msort repeat repeat_interleave tile scatter scatter_add index_add index_copy "
    "index_put multinomial bernoulli"
).split()

for _name in TENSOR_METHODS:
    setattr(Tensor, _name, (lambda _n: lambda self, *a, **k: getattr(T, _n)(self, *a, **k))(_name))

for _name, _dtype in D.SHORT_NAMES.items():  # x.half(), x.long(), ...: casts
    setattr(Tensor, _name, (lambda _d: lambda self: T.cast(self, _d))(_dtype))

for _name in ("add", "sub", "mul", "div", "clamp", "pow", "masked_fill", "scatter", "scatter_add", "index_add",
              "index_copy", "index_put"):
    setattr(Tensor, f"{_name}_", (lambda _n: lambda self, *a, **k: self._assign(getattr(T, _n)(self, *a, **k)))(_name))


def _argument_proxy(node, ctx, tensor: Tensor) -> Tensor:
    """The proxy standing for argument `tensor` in a trace: its device, and whether it requires grad."""
    proxy = Tensor._proxy(node, ctx)
    proxy.device = tensor.device
    if tensor.requires_grad:
        proxy.requires_grad = True
    return proxy


def _expand_for_write(target: Tensor, value: Tensor, ctx) -> Tensor:
    """`value` broadcast to `target`'s shape for an in-place write; an error naming the target otherwise."""
    from tritonflow.errors import ShapeError
    try:
        return T.expand(value, target.shape)
    except ShapeError:
        name = ctx.book.describe(target) if ctx is not None else f"a tensor of shape {tuple(target.shape)}"
        raise ShapeError(f"in-place write: a value of shape {tuple(value.shape)} cannot be written into "
                         f"{name}: an in-place op keeps the tensor's shape (use resize_ or a new "
                         f"tensor)") from None


leaf.register_tensor_type(Tensor, _argument_proxy, lambda tensor: tensor._grad)
