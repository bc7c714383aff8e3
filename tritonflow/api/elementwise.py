"""Framework API: elementwise functions — promotion and casting, then one primitive each."""
from __future__ import annotations

from tritonflow import dtypes as D
from tritonflow.api.convert import as_operand, cast, is_tensor, promote_operands, scalar_tensor
from tritonflow.api.creation import full_like
from tritonflow.dispatch import apply
from tritonflow.errors import DTypeError
from tritonflow.ops import elementwise as E
from tritonflow.amp.autocast_mode import autocast_to_float32


def _tensor_arg(x, op: str):
    x = as_operand(x, op)
    if not is_tensor(x):
        x = scalar_tensor(x, D.dtype_of_scalar(x))
    return x


def _unary(op, prepare, doc: str):
    """The function applying `op` to one operand, after `prepare(x, op_name)` checks or casts it."""
    def fn(x):
        return apply(op, [prepare(_tensor_arg(x, op.name), op.name)], {})
    fn.__name__ = op.name
    fn.__doc__ = doc.format(op.name)
    return fn


def _as_float(x, op: str):
    return x if x.dtype.is_floating_point else cast(x, D.DEFAULT_FLOAT)


def _not_bool(x, op: str):
    if x.dtype.is_bool:
        raise DTypeError(f"{op}: bool tensors are not supported; cast first")
    return x


def _float_unary(op):
    return _unary(op, _as_float, "Elementwise {}; integer inputs are computed in float32.")


def _numeric_unary(op):
    return _unary(op, _not_bool, "Elementwise {}.")


def _float_only(op, otherwise):
    """`op` on floating point operands; on integer and bool ones `otherwise(x)`, no kernel needed."""
    def fn(x):
        x = _tensor_arg(x, op.name)
        if not x.dtype.is_floating_point:
            return otherwise(x)
        return apply(op, [x], {})
    fn.__name__ = op.name
    return fn


def _predicate(op):
    return _float_only(op, lambda x: full_like(x, op.name == "isfinite", dtype=D.bool_))


def _rounding(op):
    return _float_only(op, lambda x: x)  # an integer is already whole


# Under autocast these run in float32 (tritonflow/amp/autocast_mode.py), as in PyTorch.
exp = autocast_to_float32(_float_unary(E.EXP))
exp2 = _float_unary(E.EXP2)
log = autocast_to_float32(_float_unary(E.LOG))
log2 = autocast_to_float32(_float_unary(E.LOG2))
log1p = autocast_to_float32(_float_unary(E.LOG1P))
expm1 = autocast_to_float32(_float_unary(E.EXPM1))
sqrt = _float_unary(E.SQRT)
rsqrt = autocast_to_float32(_float_unary(E.RSQRT))
sin = _float_unary(E.SIN)
cos = _float_unary(E.COS)
tanh = _float_unary(E.TANH)
sigmoid = _float_unary(E.SIGMOID)
erf = _float_unary(E.ERF)
reciprocal = autocast_to_float32(_float_unary(E.RECIPROCAL))
neg = _numeric_unary(E.NEG)
abs = _numeric_unary(E.ABS)
relu = _numeric_unary(E.RELU)
sign = _numeric_unary(E.SIGN)
isnan = _predicate(E.ISNAN)
isinf = _predicate(E.ISINF)
isfinite = _predicate(E.ISFINITE)


floor = _rounding(E.FLOOR)
ceil = _rounding(E.CEIL)
round = _rounding(E.ROUND)


def logical_not(x):
    return apply(E.LOGICAL_NOT, [_tensor_arg(x, "logical_not")], {})


def bitwise_not(x):
    x = _tensor_arg(x, "bitwise_not")
    if not x.dtype.is_bool:
        raise DTypeError(f"~ (bitwise_not): only bool tensors are supported, got {x.dtype.name}")
    return logical_not(x)


def _binary(op, float_only=False, name=None):
    name = name or op.name

    def fn(a, b):
        (a, b), dtype = promote_operands(name, a, b)
        if float_only and not dtype.is_floating_point:
            a, b = cast(a, D.DEFAULT_FLOAT), cast(b, D.DEFAULT_FLOAT)
        elif dtype.is_bool and op.name not in ("add", "mul", "eq", "ne", "lt", "le", "gt", "ge",
                                                "logical_and", "logical_or", "logical_xor"):
            raise DTypeError(f"{name}: bool operands are not supported; cast to an integer or float dtype")
        return apply(op, [a, b], {})
    fn.__name__ = name
    return fn


add_ = _binary(E.ADD)
sub_ = _binary(E.SUB)
mul = _binary(E.MUL)
div = _binary(E.DIV, float_only=True)
true_divide = div
floor_divide = _binary(E.FLOOR_DIVIDE)
remainder = _binary(E.REMAINDER)
fmod = remainder
maximum = _binary(E.MAXIMUM)
minimum = _binary(E.MINIMUM)
eq = _binary(E.EQ)
ne = _binary(E.NE)
lt = _binary(E.LT)
le = _binary(E.LE)
gt = _binary(E.GT)
ge = _binary(E.GE)
greater, less, equal = gt, lt, eq


def add(a, b, alpha=1):
    return add_(a, b if alpha == 1 else mul(b, alpha))


def sub(a, b, alpha=1):
    return sub_(a, b if alpha == 1 else mul(b, alpha))


subtract, multiply, divide = sub, mul, div


@autocast_to_float32
def pow(a, b):
    """a ** b; an integer base with a float exponent computes in float."""
    if isinstance(b, (int, float)) and not isinstance(b, bool) and is_tensor(a):
        if b == 2:
            return mul(a, a)
        if b == 1:
            return a
        if b == 0.5 and a.dtype.is_floating_point:
            return sqrt(a)
    return _binary(E.POW)(a, b)


def square(x):
    return mul(x, x)


def _logical(op):
    def fn(a, b):
        a, b = _tensor_arg(a, op.name), _tensor_arg(b, op.name)
        return apply(op, [cast(a, D.bool_), cast(b, D.bool_)], {})
    fn.__name__ = op.name
    return fn


logical_and = _logical(E.LOGICAL_AND)
logical_or = _logical(E.LOGICAL_OR)
logical_xor = _logical(E.LOGICAL_XOR)


def _bitwise(logical_fn, name):
    def fn(a, b):
        ta = a if is_tensor(a) else None
        tb = b if is_tensor(b) else None
        for t in (ta, tb):
            if t is not None and not t.dtype.is_bool:
                raise DTypeError(f"{name}: only bool tensors are supported, got {t.dtype.name}")
        return logical_fn(a, b)
    fn.__name__ = name
    return fn


bitwise_and = _bitwise(logical_and, "bitwise_and (&)")
bitwise_or = _bitwise(logical_or, "bitwise_or (|)")
bitwise_xor = _bitwise(logical_xor, "bitwise_xor (^)")


def where(condition, x, y):
    """Elementwise choice: x where condition is true, else y (broadcasting all three)."""
    condition = _tensor_arg(condition, "where")
    if not condition.dtype.is_bool:
        condition = cast(condition, D.bool_)
    (x, y), _ = promote_operands("where", x, y)
    return apply(E.WHERE, [condition, x, y], {})


def clamp(x, min=None, max=None):
    x = _tensor_arg(x, "clamp")
    if min is None and max is None:
        raise DTypeError("clamp: at least one of min and max must be given")
    if min is not None:
        x = maximum(x, min)
    if max is not None:
        x = minimum(x, max)
    return x


clip = clamp


def masked_fill(x, mask, value):
    return where(mask, value, x)


def type_as(x, other):
    return cast(x, other.dtype)
