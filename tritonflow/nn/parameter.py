"""tritonflow.nn: `Parameter`, a Tensor that a Module registers as trainable state.

Framework stage. A Parameter shares the storage of the tensor it is made from and requires grad
by default; assigning one to a Module attribute registers it (see modules.py).
"""
from __future__ import annotations

from tritonflow.errors import DTypeError
from tritonflow.tensor_class import Tensor
from tritonflow.tracer import leaf


class Parameter(Tensor):
    """A leaf tensor that is a Module's trainable weight: `nn.Parameter(tritonflow.randn(3, 4))`."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True) -> None:  # noqa: D107
        import tritonflow.api as T
        if data is None:
            data = T.zeros(0)
        elif not isinstance(data, Tensor):
            data = T.tensor(data)
        if data._node is not None:
            raise DTypeError("Parameter: cannot make a parameter from a traced tensor inside jit")
        self._set_state(data._data, None, None, data.dtype, data._shape, data.device)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


leaf.register_static_shape_type(Parameter)  # a weight's rows are not a batch: no symbol under dynamic=True
