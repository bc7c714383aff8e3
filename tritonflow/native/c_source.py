"""Core: the C backend's code generator — one C function per region (regions.py).

The function walks the region's rows; each row runs its column loops (`#pragma omp simd`, so the
compiler vectorises them, transcendental calls included through glibc's vector math library),
with the row-level values computed between them. Every node's value is rounded to its own dtype
as the op table's NumPy meaning rounds it: values are held in variables of the node's C type,
operations are computed in NumPy's result type of their operands, and the compiler is told not to
contract multiplies and adds (toolchain.FLAGS). Float32 sums accumulate in double.

`write(region, name)` returns a `CSource`: the text of `int name(void** args, int64_t R,
int64_t C)`, and which region inputs and
outputs its pointer arguments are, in order; a library is PRELUDE, the vector-math declarations
(toolchain.declarations) and the functions. The function returns 1 when a gather's position is out of range (the
runner then lets the NumPy meaning raise its error), else 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tritonflow.native.regions import Layout, Member, Region

C_TYPES = {"float32": "float", "float64": "double", "int64": "int64_t", "int32": "int32_t", "int16": "int16_t",
           "int8": "int8_t", "uint8": "uint8_t", "bool": "uint8_t"}
_NP_NAME = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64", np.dtype(np.int64): "int64",
            np.dtype(np.int32): "int32", np.dtype(np.int16): "int16", np.dtype(np.int8): "int8",
            np.dtype(np.uint8): "uint8", np.dtype(np.bool_): "bool"}

# op -> the C math function of a float (its double form drops the f).
_MATH = {"exp": "expf", "exp2": "exp2f", "log": "logf", "log2": "log2f", "log1p": "log1pf", "expm1": "expm1f",
         "sqrt": "sqrtf", "sin": "sinf", "cos": "cosf", "tanh": "tanhf", "erf": "erff", "floor": "floorf",
         "ceil": "ceilf", "round": "nearbyintf"}
_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@dataclass
class CSource:
    text: str
    inputs: list       # region input nodes, in argument order
    outputs: list      # region output members, after the inputs
    functions: set     # C math functions called (toolchain declares their vector forms)


def ctype(name: str) -> str:
    return C_TYPES[name]


def literal(value, dtype: str) -> str:
    """`value` as a C constant of `dtype` (floats exactly, in hexadecimal)."""
    if dtype in ("float32", "float64"):
        v = float(value)
        if math.isnan(v):
            text = "NAN"
        elif math.isinf(v):
            text = "INFINITY" if v > 0 else "(-INFINITY)"
        else:
            text = v.hex()
        return f"(({ctype(dtype)}){text})"
    if dtype == "bool":
        return "((uint8_t)1)" if bool(value) else "((uint8_t)0)"
    return f"(({ctype(dtype)}){int(value)}LL)"


def _result_name(*names: str) -> str:
    return _NP_NAME[np.result_type(*[np.dtype(_np(n)) for n in names])]


def _np(name: str):
    return np.bool_ if name == "bool" else np.dtype(name)


def _math(name: str, dtype: str) -> str:
    base = _MATH[name]
    return base if dtype == "float32" else base[:-1]


class _Scope:
    """Statements being written at one place (a row, a column loop, a gather, after the rows)."""

    def __init__(self, lines: list, col: str | None, tag: str, memo: dict | None = None) -> None:
        self.lines, self.col, self.tag = lines, col, tag
        self.memo = {} if memo is None else memo
        self.phase = -1   # the column loop this scope is (-1: not a loop)


class _Writer:
    def __init__(self, region: Region, name: str) -> None:
        self.region, self.name = region, name
        self.input_slot = {id(n): j for j, n in enumerate(region.inputs)}
        self.output_slot = {id(m.node): j for j, m in enumerate(region.outputs)}
        self.functions: set = set()

    # ------------------------------------------------------------ values

    def dtype(self, m_or_node) -> str:
        node = m_or_node.node if isinstance(m_or_node, Member) else m_or_node
        return node.type.dtype.name

    def load(self, node, role: Layout, scope: _Scope) -> str:
        j = self.input_slot[id(node)]
        if role is Layout.FULL:
            return f"in{j}[r * C + {scope.col}]"
        if role is Layout.ROW:
            return f"in{j}[r]"
        if role is Layout.COL:
            return f"in{j}[{scope.col}]"
        return f"in{j}[0]"

    def operand(self, m: Member, i: int, scope: _Scope) -> str:
        inp = m.node.inputs[i]
        inner = self.region.member(inp)
        if inner is None:
            return self.load(inp, m.roles[i], scope)
        return self.value(inner, scope)

    def value(self, m: Member, scope: _Scope) -> str:
        k = m.index
        if m.kind == "literal":
            return literal(m.literal, self.dtype(m))
        if m.stage == "pre":
            return f"p{k}"
        if m.kind == "acc":
            if m.layout is Layout.SCALAR:
                return f"acc{k}"
            return f"(({ctype(self.dtype(m))})col{k}[{scope.col}])"
        if m.stage == "row" and m.layout is Layout.ROW:
            return f"v{k}"
        if id(m.node) in scope.memo:
            return scope.memo[id(m.node)]
        if m.stage == "row" and m.layout is Layout.FULL and m.stored and 0 <= m.phase < scope.phase:
            text = self.stored_at(m, scope.col)
            scope.memo[id(m.node)] = text
            return text
        text = self.expression(m, scope)
        name = f"t{k}_{scope.tag}"
        scope.lines.append(f"const {ctype(self.dtype(m))} {name} = {text};")
        scope.memo[id(m.node)] = name
        return name

    def stored_at(self, m: Member, col: str) -> str:
        j = self.output_slot.get(id(m.node))
        if j is not None:
            return f"out{j}[r * C + {col}]"
        return f"b{m.index}[{col}]"

    def expression(self, m: Member, scope: _Scope) -> str:
        """The C expression of an op, alias or iota member from its operands' values."""
        out = self.dtype(m)
        t = ctype(out)
        if m.kind == "alias":
            return f"({t})({self.operand(m, 0, scope)})"
        if m.kind == "iota":
            return f"({t})({scope.col if m.literal else 'r'})"
        node = m.node
        ins = [self.dtype(i) for i in node.inputs]
        args = [self.operand(m, i, scope) for i in range(len(node.inputs))]
        op = node.op
        if op == "where":
            return f"(({args[0]}) ? ({t})({args[1]}) : ({t})({args[2]}))"
        if op == "cast":
            if out == "bool":
                return f"(uint8_t)(({args[0]}) != 0)"
            return f"({t})({args[0]})"
        if op in _COMPARE:
            ct = ctype(_result_name(*ins))
            return f"(uint8_t)(({ct})({args[0]}) {_COMPARE[op]} ({ct})({args[1]}))"
        if op in ("logical_and", "logical_or", "logical_xor"):
            sym = {"logical_and": "&", "logical_or": "|", "logical_xor": "^"}[op]
            return f"(uint8_t)((({args[0]}) != 0) {sym} (({args[1]}) != 0))"
        if op == "logical_not":
            return f"(uint8_t)(({args[0]}) == 0)"
        if op in ("isnan", "isinf", "isfinite"):
            x = args[0]
            ct = ctype(ins[0])
            if ins[0] not in ("float32", "float64"):
                return "((uint8_t)1)" if op == "isfinite" else "((uint8_t)0)"
            inf = f"(({ct})INFINITY)"
            fabs = "fabsf" if ins[0] == "float32" else "fabs"
            self.functions.add(fabs)
            expr = {"isnan": f"({x}) != ({x})", "isinf": f"{fabs}({x}) == {inf}",
                    "isfinite": f"{fabs}({x}) < {inf}"}[op]
            return f"(uint8_t)({expr})"
        # Arithmetic: in NumPy's result type of the operands, then rounded to the node's dtype.
        work = _result_name(*ins)
        floating = work in ("float32", "float64")
        if not floating and (op == "div" or op in _MATH or op in ("rsqrt", "sigmoid", "reciprocal")):
            work, floating = "float64", True   # NumPy computes these of integers in float64
        w = ctype(work)
        a = [f"({w})({x})" for x in args]
        expr = self._arithmetic(op, a, w, work, floating)
        return f"({t})({expr})"

    def _arithmetic(self, op: str, a: list, w: str, work: str, floating: bool) -> str:
        if op == "erf" and work == "float32":
            # The op table's erf is correctly rounded in float32: computed in double, rounded once.
            self.functions.add("erf")
            return f"erf((double)({a[0]}))"
        if op in _MATH:
            fn = _math(op, work)
            self.functions.add(fn)
            return f"{fn}({a[0]})"
        if op == "add":
            return f"{a[0]} | {a[1]}" if work == "bool" else f"{a[0]} + {a[1]}"
        if op == "mul":
            return f"{a[0]} & {a[1]}" if work == "bool" else f"{a[0]} * {a[1]}"
        if op == "sub":
            return f"{a[0]} - {a[1]}"
        if op == "div":
            return f"{a[0]} / {a[1]}"
        if op == "neg":
            return f"-{a[0]}"
        if op == "abs":
            if floating:
                fn = "fabsf" if work == "float32" else "fabs"
                self.functions.add(fn)
                return f"{fn}({a[0]})"
            return f"({a[0]} < 0 ? -{a[0]} : {a[0]})"
        if op == "rsqrt":
            fn = _math("sqrt", work)
            self.functions.add(fn)
            return f"({w})1 / {fn}({a[0]})"
        if op == "reciprocal":
            return f"({w})1 / {a[0]}"
        if op == "sigmoid":
            # From exp(-|x|) <= 1 only (no overflow, and e/(1+e) keeps the tiny values of very
            # negative x): within 3.5 ulps in float32 with libmvec's expf, where computing it in
            # double was exact but made SwiGLU 40% slower (tests/core/test_c_backend.py).
            fn = _math("exp", work)
            self.functions.add(fn)
            x = a[0]
            e = f"{fn}(-({x} < 0 ? -{x} : {x}))"
            return f"({x} >= 0 ? ({w})1 / (({w})1 + {e}) : {e} / (({w})1 + {e}))"
        if op == "relu":
            if floating:
                return f"(({a[0]} > 0 || {a[0]} != {a[0]}) ? {a[0]} : ({w})0)"
            return f"({a[0]} > 0 ? {a[0]} : ({w})0)"
        if op == "sign":
            return f"({w})(({a[0]} > 0) - ({a[0]} < 0))"   # 0 for NaN, as the op's meaning
        if op == "pow":
            fn = "powf" if work == "float32" else "pow"
            self.functions.add(fn)
            return f"{fn}({a[0]}, {a[1]})"
        if op in ("maximum", "minimum"):
            cmp = ">" if op == "maximum" else "<"
            nan = f" || {a[0]} != {a[0]}" if floating else ""
            return f"(({a[0]} {cmp} {a[1]}{nan}) ? {a[0]} : {a[1]})"
        raise NotImplementedError(f"C source: no formula for {op}")

    # ------------------------------------------------------------ the function

    def write(self) -> CSource:
        region = self.region
        lines: list = []
        n_in = len(region.inputs)
        head = [f"const {ctype(self.dtype(n))}* restrict in{j} = (const {ctype(self.dtype(n))}*)args[{j}];"
                for j, n in enumerate(region.inputs)]
        head += [f"{ctype(self.dtype(m))}* restrict out{j} = ({ctype(self.dtype(m))}*)args[{n_in + j}];"
                 for j, m in enumerate(region.outputs)]
        lines += head
        lines.append("int err = 0;")
        frees = []
        # Once, before the rows: scalar values of constants, row buffers, row accumulators.
        pre = _Scope(lines, None, "pre")
        for m in region.members:
            if m.stage == "pre" and m.kind != "literal":
                lines.append(f"const {ctype(self.dtype(m))} p{m.index} = {self.expression(m, pre)};")
        for m in region.members:
            if m.stored and id(m.node) not in self.output_slot:
                lines.append(f"{ctype(self.dtype(m))}* b{m.index} = ({ctype(self.dtype(m))}*)malloc(C * "
                             f"sizeof({ctype(self.dtype(m))}));")
                frees.append(f"b{m.index}")
            if m.kind == "acc":
                lines += self._acc_setup(m)
                if m.layout is Layout.COL:
                    frees.append(f"col{m.index}")
        lines.append("for (int64_t r = 0; r < R; r++) {")
        body: list = []
        row = _Scope(body, None, "row")
        last = max((m.phase for m in region.members if m.stage == "row"), default=0)
        for phase in range(max(last, region.loops - 1) + 1):
            self._row_level(phase, row)
            if phase < region.loops:
                self._loop(phase, body)
        lines += ["  " + line for line in body]
        lines.append("}")
        lines += self._after_rows()
        lines += [f"free({name});" for name in frees]
        lines.append("return err;")
        # R and C are arguments, so regions of one structure at different sizes share a function.
        text = (f"int {self.name}(void** args, int64_t R, int64_t C) {{\n" +
                "\n".join("  " + x for x in lines) + "\n}\n")
        return CSource(text, list(region.inputs), list(region.outputs), set(self.functions))

    def _acc_setup(self, m: Member) -> list:
        k, kind = m.index, m.node.op
        acc, neutral = self._accumulator(m)
        if m.layout is Layout.SCALAR:
            lines = [f"{acc} sa{k} = {neutral};"]
            if kind != "reduce_sum" and self._floating_input(m):
                lines.append(f"int sn{k} = 0;")
            return lines
        return [f"{acc}* col{k} = ({acc}*)malloc(C * sizeof({acc}));",
                f"for (int64_t c = 0; c < C; c++) col{k}[c] = {neutral};"]

    def _floating_input(self, m: Member) -> bool:
        return self.dtype(m.node.inputs[0]) in ("float32", "float64")

    def _accumulator(self, m: Member) -> tuple:
        """(C type, neutral value) of a reduction's accumulator."""
        src = self.dtype(m.node.inputs[0])
        if m.node.op == "reduce_sum":
            if src in ("float32", "float64"):
                return "double", "0.0"
            return ctype(self.dtype(m)), "0"
        t = ctype(src)
        high = m.node.op == "reduce_min"
        if src in ("float32", "float64"):
            return t, f"(({t}){'INFINITY' if high else '-INFINITY'})"
        if src == "bool":
            return t, "1" if high else "0"
        bits = {"int64": 64, "int32": 32, "int16": 16, "int8": 8, "uint8": 8}[src]
        if src == "uint8":
            return t, "255" if high else "0"
        return t, f"INT{bits}_MAX" if high else f"INT{bits}_MIN"

    def _update(self, op: str, acc: str, x: str, sticky_nan: bool) -> str:
        if op == "reduce_sum":
            return f"{acc} += {x};"
        cmp = ">" if op == "reduce_max" else "<"
        nan = f" || {x} != {x}" if sticky_nan else ""
        return f"{acc} = ({x} {cmp} {acc}{nan}) ? {x} : {acc};"

    def _input_phase(self, m: Member) -> int:
        inner = self.region.member(m.node.inputs[0])
        return inner.phase if inner is not None and inner.stage == "row" else 0

    def _row_level(self, phase: int, row: _Scope) -> None:
        region = self.region
        for m in region.members:
            if m.stage != "row" or m.layout is not Layout.ROW or m.phase != phase or m.kind == "reduce":
                continue
            t = ctype(self.dtype(m))
            if m.kind == "gather":
                g = f"g{m.index}"
                position = self.operand(m, 1, row)
                row.lines += [f"int64_t {g} = (int64_t)({position});",
                              f"if ({g} < 0) {g} += C;",
                              f"if ((uint64_t){g} >= (uint64_t)C) {{ err = 1; {g} = 0; }}"]
                scope = _Scope(row.lines, g, f"g{m.index}")
                scope.phase = phase
                row.lines.append(f"const {t} v{m.index} = {self._gathered(m, scope)};")
            else:
                row.lines.append(f"const {t} v{m.index} = {self.expression(m, row)};")
        for m in region.members:
            if m.kind == "acc" and m.roles[0] is Layout.ROW and self._input_phase(m) == phase:
                x = self.operand(m, 0, row)
                k = m.index
                row.lines.append(self._update(m.node.op, f"sa{k}", x, False))
                if m.node.op != "reduce_sum" and self._floating_input(m):
                    row.lines.append(f"sn{k} |= {x} != {x};")
        for m in region.outputs:
            if m.stage == "row" and m.layout is Layout.ROW and m.phase == phase:
                row.lines.append(f"out{self.output_slot[id(m.node)]}[r] = v{m.index};")

    def _gathered(self, m: Member, scope: _Scope) -> str:
        """The gather's source value at the row's position (its expression at column g)."""
        src = m.node.inputs[0]
        inner = self.region.member(src)
        if inner is None:
            return self.load(src, Layout.FULL, scope)
        return self.value(inner, scope)

    def _loop(self, phase: int, body: list) -> None:
        region = self.region
        reductions = [m for m in region.members if m.kind == "reduce" and m.phase == phase + 1]
        accs = [m for m in region.members if m.kind == "acc" and m.roles[0] is Layout.FULL
                and self._input_phase(m) == phase]
        stores = [m for m in region.outputs if m.stage == "row" and m.layout is Layout.FULL and m.phase == phase
                  and m.kind != "literal"]
        kept = [m for m in region.members if m.stored and m.phase == phase and id(m.node) not in self.output_slot]
        if not (reductions or accs or stores or kept):
            return
        clauses = []
        for m in reductions + [a for a in accs if a.layout is Layout.SCALAR]:
            acc, neutral = self._accumulator(m)
            k = m.index
            body.append(f"{acc} a{k} = {neutral};")
            sym = {"reduce_sum": "+", "reduce_max": "max", "reduce_min": "min"}[m.node.op]
            clauses.append(f"reduction({sym}:a{k})")
            if m.node.op != "reduce_sum" and self._floating_input(m):
                body.append(f"int n{k} = 0;")
                clauses.append(f"reduction(|:n{k})")
        inner: list = []
        scope = _Scope(inner, "c", f"l{phase}")
        scope.phase = phase
        for m in reductions + [a for a in accs if a.layout is Layout.SCALAR]:
            x = self.operand(m, 0, scope)
            k = m.index
            inner.append(self._update(m.node.op, f"a{k}", x, False))
            if m.node.op != "reduce_sum" and self._floating_input(m):
                inner.append(f"n{k} |= {x} != {x};")
        for m in accs:
            if m.layout is Layout.COL:
                x = self.operand(m, 0, scope)
                inner.append(self._update(m.node.op, f"col{m.index}[c]", x, self._floating_input(m)))
        for m in stores:
            inner.append(f"out{self.output_slot[id(m.node)]}[r * C + c] = {self.value(m, scope)};")
        for m in kept:
            inner.append(f"b{m.index}[c] = {self.value(m, scope)};")
        body.append(f"#pragma omp simd {' '.join(clauses)}".rstrip())
        body.append(f"for (int64_t c = 0; c < C; c++) {{")
        body += ["  " + line for line in inner]
        body.append("}")
        for m in reductions:
            k = m.index
            t = ctype(self.dtype(m))
            if m.node.op != "reduce_sum" and self._floating_input(m):
                body.append(f"const {t} v{k} = n{k} ? ({t})NAN : ({t})a{k};")
            else:
                body.append(f"const {t} v{k} = ({t})a{k};")
        for m in accs:
            if m.layout is Layout.SCALAR:
                k = m.index
                body.append(self._update(m.node.op, f"sa{k}", f"a{k}", False))
                if m.node.op != "reduce_sum" and self._floating_input(m):
                    body.append(f"sn{k} |= n{k};")

    def _after_rows(self) -> list:
        region = self.region
        lines: list = []
        post = _Scope(lines, None, "post")
        for m in region.members:
            if m.kind == "acc" and m.layout is Layout.SCALAR:
                t = ctype(self.dtype(m))
                k = m.index
                if m.node.op != "reduce_sum" and self._floating_input(m):
                    lines.append(f"const {t} acc{k} = sn{k} ? ({t})NAN : ({t})sa{k};")
                else:
                    lines.append(f"const {t} acc{k} = ({t})sa{k};")
        for m in region.members:
            if m.stage == "post" and m.layout is Layout.SCALAR:
                post.memo[id(m.node)] = self.value(m, post)
        col_outputs = [m for m in region.outputs if m.layout is Layout.COL and m.kind != "literal"]
        if col_outputs:
            inner: list = []
            scope = _Scope(inner, "c", "post_c", memo=dict(post.memo))
            for m in col_outputs:
                inner.append(f"out{self.output_slot[id(m.node)]}[c] = {self.value(m, scope)};")
            lines.append(f"for (int64_t c = 0; c < C; c++) {{")
            lines += ["  " + line for line in inner]
            lines.append("}")
        for m in region.outputs:
            j = self.output_slot[id(m.node)]
            if m.kind == "literal":
                size = {Layout.FULL: "R * C", Layout.ROW: "R", Layout.COL: "C", Layout.SCALAR: "1"}[m.layout]
                lines.append(f"for (int64_t i = 0; i < {size}; i++) out{j}[i] = {literal(m.literal, self.dtype(m))};")
            elif m.layout is Layout.SCALAR:
                lines.append(f"out{j}[0] = {self.value(m, post)};")
        return lines


# What the generated code needs from the C library, declared here rather than included: parsing
# stdint.h, stdlib.h and math.h is half of a small source's compile time. Math functions are
# declared per source by toolchain.declarations (with their vector forms).
PRELUDE = """\
typedef __INT64_TYPE__ int64_t; typedef __UINT64_TYPE__ uint64_t; typedef __INT32_TYPE__ int32_t;
typedef __INT16_TYPE__ int16_t; typedef __INT8_TYPE__ int8_t; typedef __UINT8_TYPE__ uint8_t;
typedef __SIZE_TYPE__ size_t;
void *malloc(size_t); void free(void *);
#define INFINITY (__builtin_inff())
#define NAN (__builtin_nanf(""))
#define INT64_MAX __INT64_MAX__
#define INT64_MIN (-__INT64_MAX__ - 1)
#define INT32_MAX __INT32_MAX__
#define INT32_MIN (-__INT32_MAX__ - 1)
#define INT16_MAX __INT16_MAX__
#define INT16_MIN (-__INT16_MAX__ - 1)
#define INT8_MAX __INT8_MAX__
#define INT8_MIN (-__INT8_MAX__ - 1)
"""


def write(region: Region, name: str = "tf_region") -> CSource:
    """The C function `int name(void** args)` computing `region`."""
    return _Writer(region, name).write()
