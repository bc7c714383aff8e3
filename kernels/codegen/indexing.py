"""Lowering stage: index math — views as SymPy index expressions, simplified, printed as Triton.

Every value inside a kernel is addressed by a tuple of index expressions, one per dim of the
value's shape, written over the kernel's iteration variables (x0, x1, ... for the outer space,
r0, r1, ... for the reduced space). A view maps an output index tuple to an input index tuple by
its op-table entry's rule (tritonflow/ops/view_index.py); a chain of views composes into one
expression, so views never copy.

SymPy's own floor/Mod simplification does not know that an iteration variable lies in
[0, size), so reshapes would leave `(x0*12 + x1) // 12` unsimplified. `floordiv` and `modulo`
below use those ranges: terms whose coefficient the divisor divides move out of the division,
and the division vanishes when the remaining terms provably stay in [0, divisor).
"""
from __future__ import annotations

from typing import Sequence

import sympy

from tritonflow.ir.types import Dim
from tritonflow.ops.registry import OPS, Kind
# The op table's index vocabulary, used throughout the lowering as `ix.<name>`.
from tritonflow.ops.view_index import as_expr, contiguous_strides, expand_index, is_one, linearize, product  # noqa: F401

Index = tuple  # tuple of sympy expressions, one per dim


class FloorDiv(sympy.Function):
    """Integer division of non-negative index expressions (prints as `//`)."""

    nargs = 2
    is_integer = True


class ModIdx(sympy.Function):
    """Remainder of non-negative index expressions (prints as `%`)."""

    nargs = 2
    is_integer = True


# ---------------------------------------------------------------- range reasoning

class Ranges:
    """Upper bounds (exclusive) of the free symbols of index expressions; all are >= 0."""

    def __init__(self) -> None:
        self.bound: dict = {}

    def add(self, symbol: sympy.Symbol, size: Dim) -> None:
        self.bound[symbol] = as_expr(size)

    # The `divide` the op table's view rules take (tritonflow/ops/view_index.py).
    def floordiv(self, expr: sympy.Expr, divisor: Dim) -> sympy.Expr:
        return floordiv(expr, divisor, self)

    def modulo(self, expr: sympy.Expr, divisor: Dim) -> sympy.Expr:
        return modulo(expr, divisor, self)

    def max_value(self, expr: sympy.Expr):
        """An upper bound (inclusive) of a non-negative expression, or None if unknown."""
        expr = sympy.expand(expr)
        total = sympy.Integer(0)
        for term in sympy.Add.make_args(expr):
            coeff, rest = term.as_coeff_Mul()
            if coeff < 0:
                return None
            bounded = [s for s in rest.free_symbols if s in self.bound]
            if not bounded:
                if rest.atoms(FloorDiv, ModIdx):
                    return None
                total += term  # a size or stride symbol: itself is its bound
                continue
            if len(bounded) != 1 or rest.atoms(FloorDiv, ModIdx):
                if isinstance(rest, ModIdx):
                    total += coeff * (rest.args[1] - 1)
                    continue
                if isinstance(rest, FloorDiv) and self.max_value(rest.args[0]) is not None:
                    total += coeff * self.max_value(rest.args[0])  # loose but safe
                    continue
                return None
            var = bounded[0]
            factor = sympy.cancel(rest / var)
            if var in factor.free_symbols:
                return None
            total += coeff * factor * (self.bound[var] - 1)
        return sympy.expand(total)


def provably_nonnegative(expr: sympy.Expr) -> bool:
    """True if `expr` >= 0 for every size symbol >= 1 (sizes are positive where elements exist)."""
    expr = sympy.expand(expr)
    if expr.is_number:
        return bool(expr >= 0)
    shifted = sympy.expand(expr.subs({s: s + 1 for s in expr.free_symbols}, simultaneous=True))
    try:
        poly = sympy.Poly(shifted, *sorted(shifted.free_symbols, key=str))
    except sympy.PolynomialError:
        return False
    return all(c >= 0 for c in poly.coeffs())


def _divides(divisor: sympy.Expr, term: sympy.Expr) -> bool:
    quotient = sympy.cancel(term / divisor)
    numer, denom = sympy.fraction(quotient)
    return denom == 1 and not quotient.atoms(sympy.Rational) - quotient.atoms(sympy.Integer)


def floordiv(expr: sympy.Expr, divisor: Dim, ranges: Ranges) -> sympy.Expr:
    divisor = as_expr(divisor)
    if divisor == 1:
        return expr
    expr = sympy.expand(expr)
    if expr == 0:
        return sympy.Integer(0)
    whole, rest = [], []
    for term in sympy.Add.make_args(expr):
        (whole if _divides(divisor, term) else rest).append(term)
    rest_sum = sympy.Add(*rest)
    top = ranges.max_value(rest_sum)
    if top is not None and provably_nonnegative(divisor - 1 - top):
        return sympy.expand(sympy.Add(*whole) / divisor)
    if len(whole) == 0 and isinstance(expr, FloorDiv):
        return FloorDiv(expr.args[0], expr.args[1] * divisor)
    return FloorDiv(expr, divisor)


def modulo(expr: sympy.Expr, divisor: Dim, ranges: Ranges) -> sympy.Expr:
    divisor = as_expr(divisor)
    if divisor == 1:
        return sympy.Integer(0)
    expr = sympy.expand(expr)
    rest = [t for t in sympy.Add.make_args(expr) if not _divides(divisor, t)]
    rest_sum = sympy.Add(*rest)
    top = ranges.max_value(rest_sum)
    if top is not None and provably_nonnegative(divisor - 1 - top):
        return rest_sum
    return ModIdx(expr, divisor)


# ---------------------------------------------------------------- views (the op table's index rules)

def shape_equal(a: Sequence[Dim], b: Sequence[Dim]) -> bool:
    """Equal shapes, symbolic dims compared as expressions."""
    return len(a) == len(b) and all(sympy.expand(as_expr(x) - as_expr(y)) == 0 for x, y in zip(a, b))


def broadcast_index(out_index: Index, in_shape: Sequence[Dim]) -> Index:
    """Elementwise ops broadcast implicitly, exactly like expand."""
    return expand_index(out_index, in_shape)


def is_plain_view(node) -> bool:
    """A view whose every element reads one element of its one input, unconditionally."""
    op = OPS.get(node.op)
    return op is not None and op.kind is Kind.MOVEMENT and op.view is not None and not op.view.conditional


def through_view(node, out_index: Index, ranges: Ranges) -> Index:
    """The index into the input of `node` (a plain view) that `node` reads at `out_index`."""
    (read,) = OPS[node.op].view.reads(node, out_index, ranges)
    return read.index


# ---------------------------------------------------------------- linear structure

def linear_coeffs(expr: sympy.Expr, variables: Sequence[sympy.Symbol]):
    """(coefficient per variable, remainder) if `expr` is linear in `variables`, else None."""
    expr = sympy.expand(expr)
    wanted = set(variables)
    coeffs = {v: sympy.Integer(0) for v in variables}
    rest = []
    for term in sympy.Add.make_args(expr):
        present = term.free_symbols & wanted
        if not present:
            rest.append(term)
            continue
        if len(present) != 1:
            return None
        (var,) = present
        coeff = sympy.cancel(term / var)
        if var in coeff.free_symbols or term.atoms(FloorDiv, ModIdx):
            return None
        coeffs[var] += coeff
    return coeffs, sympy.Add(*rest)


class Space:
    """One iteration space of a kernel (x: rows/elements, r: reduced elements).

    `variables[d]` iterates dim d of `sizes` (size-1 dims are dropped by the caller); the flat
    index is `flat_name` and its validity mask `mask_name`.
    """

    def __init__(self, prefix: str, sizes: Sequence[Dim], flat_name: str, mask_name: str) -> None:
        self.prefix = prefix
        self.sizes = [as_expr(s) for s in sizes]
        self.variables = [sympy.Symbol(f"{prefix}{d}", integer=True, nonnegative=True)
                          for d in range(len(sizes))]
        self.flat_name = flat_name
        self.mask_name = mask_name
        self.numel = product(self.sizes)
        self.strides = contiguous_strides(self.sizes)
        self.flat = sympy.Symbol(flat_name, integer=True, nonnegative=True)
        self.tail_symbols: dict = {}  # k -> Symbol for flat % strides[k-1]

    def register(self, ranges: Ranges) -> None:
        for var, size in zip(self.variables, self.sizes):
            ranges.add(var, size)
        ranges.add(self.flat, self.numel)

    def var_definition(self, d: int) -> sympy.Expr:
        q = FloorDiv(self.flat, self.strides[d]) if self.strides[d] != 1 else self.flat
        return q if d == 0 else ModIdx(q, self.sizes[d])

    def rewrite_tail(self, expr: sympy.Expr) -> sympy.Expr:
        """Replace the longest trailing run of variables laid out like a contiguous tensor
        (coefficients c*stride_d) by c*flat (or c*(flat % ...)): `x0*12 + x1*4 + x2` -> `xindex`."""
        if not self.variables:
            return expr
        found = linear_coeffs(expr, self.variables)
        if found is None:
            return expr
        coeffs, rest = found
        last = len(self.variables) - 1
        c = coeffs[self.variables[last]]
        if c == 0:
            return expr
        k = last
        while k > 0:
            want = c * self.strides[k - 1]
            if sympy.expand(coeffs[self.variables[k - 1]] - want) != 0:
                break
            k -= 1
        if k == last and len(self.variables) > 1:
            return expr  # a run of one variable gains nothing
        if k == 0:
            tail = self.flat
        else:
            if k not in self.tail_symbols:
                self.tail_symbols[k] = sympy.Symbol(f"{self.flat_name}_mod{k}", integer=True, nonnegative=True)
            tail = self.tail_symbols[k]
        head = sum((coeffs[v] * v for v in self.variables[:k]), sympy.Integer(0))
        return head + c * tail + rest

    def tail_definition(self, k: int) -> sympy.Expr:
        return ModIdx(self.flat, self.strides[k - 1])


# ---------------------------------------------------------------- printing

class TritonPrinter:
    """Prints index expressions as Triton integer arithmetic and records the symbols it used."""

    def __init__(self) -> None:
        self.used: set = set()

    def __call__(self, expr) -> str:
        return self.print(sympy.sympify(expr))

    def print(self, e) -> str:
        if isinstance(e, sympy.Integer):
            return str(int(e))
        if isinstance(e, sympy.Symbol):
            self.used.add(e.name)
            return e.name
        # Operands are parenthesized when they are sums: `(r2 - 1) // 2`, never `r2 - 1 // 2`.
        if isinstance(e, FloorDiv):
            return f"({self.print_operand(e.args[0])} // {self.print_operand(e.args[1])})"
        if isinstance(e, ModIdx):
            return f"({self.print_operand(e.args[0])} % {self.print_operand(e.args[1])})"
        if isinstance(e, sympy.Add):
            terms = sorted(sympy.Add.make_args(e), key=sympy.default_sort_key)
            pos = [t for t in terms if not t.could_extract_minus_sign()]
            neg = [t for t in terms if t.could_extract_minus_sign()]
            text = " + ".join(self.print(t) for t in pos) if pos else "0"
            for t in neg:
                text += f" - {self.print_factor(-t)}"
            return text
        if isinstance(e, sympy.Mul):
            coeff, rest = e.as_coeff_Mul()
            factors = [self.print_factor(f) for f in sympy.Mul.make_args(rest)]
            if coeff == -1:
                return "-" + " * ".join(factors)
            if coeff != 1:
                factors.insert(0, self.print_factor(coeff))
            return " * ".join(factors)
        if isinstance(e, sympy.Pow) and e.exp.is_Integer and int(e.exp) > 0:
            return " * ".join([self.print_factor(e.base)] * int(e.exp))
        raise NotImplementedError(f"cannot print index expression {e!r}")

    def print_factor(self, e) -> str:
        text = self.print(e)
        return f"({text})" if isinstance(e, sympy.Add) else text

    def print_operand(self, e) -> str:
        """An operand of `//` or `%`: anything but a name or a number is parenthesized."""
        text = self.print(e)
        if isinstance(e, (sympy.Symbol, sympy.Integer, FloorDiv, ModIdx)) and not text.startswith("-"):
            return text
        return f"({text})"
