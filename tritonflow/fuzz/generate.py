"""Fuzzer stage: generate random valid programs from the op vocabulary.

Each candidate line is evaluated eagerly on the upcast inputs as it is chosen, so every program
type-checks by construction, and a line whose float64 value overflows the program's dtype (or
turns non-finite) is rejected and another drawn — "programs whose reference overflows are
regenerated", one line at a time. Only continuous functions of computed values are used (a
comparison of two computed values could flip on rounding alone); comparisons, floor/round/sign,
% and // and argmax read inputs only, except in integer programs, which are exact. Over a few
hundred seeds the programs reach every primitive of the op table (random numbers and attention
included) except the attention backward ops.

With `grad=True` the program is one to differentiate (fuzz/grad.py): float32 or float64, no
random numbers and no amax/amin, and a line is drawn again when a value it takes through a kink
(abs, relu, maximum, clamp) comes within KINK_MARGIN of the kink, where the two runs' roundings
could pick different sides and so different derivatives.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

import tritonflow as tf
from tritonflow import dtypes as D
from tritonflow.errors import TritonflowError
from tritonflow.fuzz.program import ONE, Node, Program, reference_dtype

FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
INT_DTYPES = ("int32", "int64", "int8")
SIZES = (1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31)
MAX_INPUT_NUMEL = 1024

FLOAT_UNARY = [
    "tf.exp({a})", "tf.tanh({a})", "tf.sigmoid({a})", "tf.sin({a})", "tf.cos({a})", "tf.relu({a})", "-{a}",
    "tf.abs({a})", "tf.erf({a})", "tf.log(tf.abs({a}) + 1.0)", "tf.sqrt(tf.abs({a}) + 0.25)",
    "tf.rsqrt(tf.abs({a}) + 0.25)", "F.gelu({a})", "F.gelu({a}, approximate='tanh')", "F.silu({a})",
    "{a} * 0.5", "{a} + 1.5", "{a} * {a}", "tf.clamp({a}, -1.0, 1.0)", "tf.log1p(tf.abs({a}))",
    "tf.expm1(tf.clamp({a}, -3.0, 3.0))", "F.leaky_relu({a}, 0.1)", "tf.reciprocal(tf.abs({a}) + 1.0)",
    "tf.exp2(tf.clamp({a}, -4.0, 4.0))", "tf.log2(tf.abs({a}) + 0.5)", "tf.abs({a}) ** 1.5", "{a} ** 2",
    "tf.pow(tf.abs({a}) + 0.5, {c})", "tf.clamp({a}, min={b})", "{a} * 0.5 + tf.arange({a}.shape[-1]) * 0.25",
    # Discontinuous functions and comparisons read inputs only (exact in both runs); round(c * 4)
    # meets exact halves (bfloat16 inputs), where round-half-to-even decides.
    "tf.floor({c} * 2.0) * {a}", "tf.ceil({c}) + {a}", "tf.round({c} * 4.0)", "tf.sign({c}) * {a}",
    "{c} % 0.75", "{c} // 0.75", "({c} > 0).to(FLOAT) * {a}", "tf.where(tf.isnan({c}) | tf.isinf({c}), 0.0, {a})",
    "tf.where(tf.isfinite({c}) & ~({c} >= 1.5), {a}, {b})", "tf.where(({c} < 0) ^ ({c} <= -1), {a}, -{a})",
    "tf.where(({c} == {c}) & ({c} != 0.5), {a}, 1.0)",
    # Random numbers: both runs start the Philox stream at the program's seed (check.py).
    "F.dropout({a}, 0.25)", "tf.rand_like({a}) * {a}", "tf.randn_like({a}) + {a}",
]
INT_UNARY = ["-{a}", "tf.abs({a})", "tf.relu({a})", "{a} * 2", "{a} + 3", "{a} * {a}", "{a} // 2", "{a} % 3",
             "tf.clamp({a}, -2, 2)", "{a} ** 2", "tf.sign({a})", "{a} // -2", "{a} % -3", "tf.cumsum({a}, {d})",
             "({a} > {b}).to({a}.dtype)", "{a}.to(tf.int8).to({a}.dtype)", "tf.where(({c} > 0) | ({c} < -1), {a}, 0)"]
FLOAT_BINARY = ["{a} + {b}", "{a} - {b}", "{a} * {b}", "tf.maximum({a}, {b})", "tf.minimum({a}, {b})",
                "{a} / (tf.abs({b}) + 1.0)", "tf.where({c} > 0, {a}, {b})"]
INT_BINARY = ["{a} + {b}", "{a} - {b}", "{a} * {b}", "tf.maximum({a}, {b})", "tf.minimum({a}, {b})",
              "tf.where({c} > 0, {a}, {b})"]
FLOAT_REDUCE = ["tf.sum({a}, dim={dims}, keepdim={k})", "tf.mean({a}, dim={dims}, keepdim={k})",
                "tf.amax({a}, dim={dims}, keepdim={k})", "tf.amin({a}, dim={dims}, keepdim={k})",
                "tf.logsumexp({a}, dim={dims}, keepdim={k})", "tf.var({a}, dim={dims}, keepdim={k})",
                "tf.prod({a}, dim={dims}, keepdim={k})", "tf.argmax({c}, {d}).to(FLOAT)",
                "tf.argmin({c}, {d}, keepdim={k}).to(FLOAT)"]  # int64 * 0.5 would be float32 in both runs
INT_REDUCE = ["tf.sum({a}, dim={dims}, keepdim={k})", "tf.amax({a}, dim={dims}, keepdim={k})",
              "tf.amin({a}, dim={dims}, keepdim={k})", "tf.prod({a}, dim={dims}, keepdim={k})",
              "tf.argmax({a}, {d})", "tf.argmin({a}, {d}, keepdim={k})"]
NORMS = ["F.softmax({a}, {d})", "F.log_softmax({a}, {d})", "F.layer_norm({a}, ({a}.shape[-1],))",
         "F.rms_norm({a}, ({a}.shape[-1],), eps=1e-5)", "tf.cumsum({a}, {d})"]
VIEWS = ["{a}.permute({perm})", "{a}.transpose(-1, -2)", "{a}.unsqueeze({d1})", "{a}.squeeze()", "{a}.flatten()",
         "{a}.reshape({a}.shape[0], -1)", "{a}[..., ::2]", "{a}[1:]", "tf.flip({a}, ({d},))",
         "tf.cat([{a}, {a} * 2], {d})", "{a}.unsqueeze(0).expand(3, *{a}.shape)", "{a}.T.contiguous()",
         "{a}[..., ::-2]", "{a}[::-1]", "{a}[..., 1::3]", "{a}[0]", "{a}[..., -1]", "{a}[None, ..., None]",
         "tf.stack([{a}, {a} + 1], {d1})", "F.pad({a}, (1, 2))", "tf.narrow({a}, {d}, 0, 1)",
         "tf.chunk({a}, 2, {d})[-1]", "tf.unbind({a}, {d})[0]", "{a}.expand(2, *{a}.shape).transpose(0, -1)",
         "tf.index_select({a}, {d}, tf.tensor([0, 0]))", "tf.take_along_dim({a}, tf.argmax({c}, {d}, keepdim=True), {d})",
         "tf.scatter_add({a}, {d}, tf.zeros_like({a}, dtype=tf.int64), {a})", "tf.sort({a}, {d})[0]",
         # positions reversed along d (argsort of equal values is the identity): every place written once
         "tf.scatter({a}, {d}, tf.flip(tf.argsort(tf.zeros_like({a}), {d}), ({d},)), {a} * 2)"]
MATMULS = ["{a} @ {a}.transpose(-1, -2)", "{a}.transpose(-1, -2) @ {a}", "tf.matmul({a}, {b}.transpose(-1, -2))",
           "{a} @ {b}", "{a}[..., 0] @ {a}", "{a}.unsqueeze(0).expand(2, *{a}.shape) @ {b}",
           "F.scaled_dot_product_attention({a}, {a}, {a})",
           "F.scaled_dot_product_attention({a}, {b}, {b}, is_causal=True)",
           "F.scaled_dot_product_attention({a}, {a}, {a}, dropout_p=0.25)"]

CATEGORY_WEIGHTS = {"unary": 4, "binary": 4, "reduce": 2, "norm": 1.5, "view": 3, "matmul": 1.2}

# Gradient programs (fuzz/grad.py) leave out random numbers (the torch reference draws its own)
# and amax/amin (ties split the gradient by convention), and keep away from kinks (below).
GRAD_DTYPES = ("float32", "float64")
_NOT_FOR_GRAD = ("dropout", "rand_like", "randn_like", "tf.amax", "tf.amin", "//")  # torch: no floor_divide vjp
# (pattern, the value whose sign flips at the kink): a line is drawn again when that value comes
# within KINK_MARGIN of zero (relative to its size), where rounding could pick the other side.
KINKS = [(re.compile(r"tf\.abs\(\{(\w)\}\)"), "{%s}"), (re.compile(r"relu\(\{(\w)\}"), "{%s}"),
         (re.compile(r"tf\.(?:maximum|minimum)\(\{a\}, \{b\}\)"), "{a} - {b}"),
         (re.compile(r"tf\.clamp\(\{a\}, -1\.0, 1\.0\)"), "tf.abs({a}) - 1.0"),
         (re.compile(r"tf\.clamp\(\{a\}, -3\.0, 3\.0\)"), "tf.abs({a}) - 3.0"),
         (re.compile(r"tf\.clamp\(\{a\}, -4\.0, 4\.0\)"), "tf.abs({a}) - 4.0"),
         (re.compile(r"tf\.clamp\(\{a\}, min=\{b\}\)"), "{a} - {b}")]
KINK_MARGIN = 1e-3


def kink_values(template: str) -> list:
    """Expressions (in the template's placeholders) that are zero exactly at a kink of `template`."""
    found = []
    for pattern, value in KINKS:
        for match in pattern.finditer(template):
            found.append(value % match.group(1) if "%s" in value else value)
    return found


class Generator:
    """Draws one program from `seed` (see module docstring)."""

    def __init__(self, seed: int, dtypes: tuple | None = None, max_nodes: int = 8, grad: bool = False) -> None:
        self.rng = np.random.default_rng(seed)
        self.grad = grad   # a program to differentiate: float dtypes, GRAD vocabulary, kinks avoided
        self.dtypes = dtypes or (GRAD_DTYPES if grad else FLOAT_DTYPES + INT_DTYPES)
        self.max_nodes = max_nodes
        self._kinks: list = []   # the current candidate's kink values (grad programs)
        self.rejected = 0   # candidate lines dropped because their reference overflowed (or neared a kink)
        self.crashes: list = []  # (program so far, line, exception): eager code raised a non-tritonflow error

    # ---------------------------------------------------------------- shapes

    def _input_dims(self, sizes: list) -> list:
        rank = int(self.rng.choice([0, 1, 2, 2, 3, 3, 4], p=[0.05, 0.2, 0.25, 0.15, 0.15, 0.1, 0.1]))
        for _ in range(20):
            dims = [ONE if self.rng.random() < 0.15 else int(self.rng.integers(len(sizes))) for _ in range(rank)]
            numel = int(np.prod([1 if d == ONE else sizes[d] for d in dims]))
            if numel <= MAX_INPUT_NUMEL:
                return dims
        return [ONE] * rank

    # ---------------------------------------------------------------- one program

    def program(self) -> Program:
        dtype = str(self.rng.choice(self.dtypes))
        sizes = [int(self.rng.choice(SIZES)) for _ in range(4)]
        n_inputs = int(self.rng.integers(1, 4))
        inputs = [(f"x{i}", self._input_dims(sizes)) for i in range(n_inputs)]
        prog = Program(dtype, sizes, inputs, [], [], input_seed=int(self.rng.integers(2**31)),
                       tags={"grad": True} if self.grad else {})
        env = self._reference_env(prog)
        torch_env = self._torch_env(env) if self.grad else None
        limit = _range_limit(dtype)
        n_nodes = int(self.rng.integers(1, self.max_nodes + 1))
        for index in range(n_nodes):
            for _attempt in range(12):
                expr = self._candidate(env, prog, dtype)
                if expr is None:
                    continue
                try:
                    value = _evaluate(expr, env)
                except Exception as exc:  # a raw Python/NumPy error from eager code is a bug to report
                    if not _raised_by_the_line_itself(exc):
                        self.crashes.append((prog.source(), expr, f"{type(exc).__name__}: {exc}"))
                    continue
                if value is None:
                    continue
                if not _in_range(value, limit) or (self.grad and self._near_kink(env)):
                    self.rejected += 1
                    continue
                if torch_env is not None and not _torch_runs(expr, torch_env, f"v{index}"):
                    continue   # the torch reference could not run it (a signature torch lacks)
                name = f"v{index}"
                prog.nodes.append(Node(name, expr))
                env[name] = value
                break
        if not prog.nodes:  # every draw failed: the identity program still exercises the backend
            prog.nodes.append(Node("v0", "x0 + x0"))
        # Every line nothing else reads is returned, so no line is dead code for the compiler to drop
        # (and programs with several results exercise multi-output kernels).
        read = {name for node in prog.nodes for name in _names_in(node.expr)}
        prog.outputs = [n.name for n in prog.nodes if n.name not in read]
        return prog

    def _reference_env(self, prog: Program) -> dict:
        ref = reference_dtype(prog.dtype)
        env = {"tf": tf, "F": tf.nn.functional, "FLOAT": tf.float64}
        for (name, _), array in zip(prog.inputs, prog.make_inputs()):
            env[name] = tf.from_numpy(array.astype(D.as_dtype(ref).np))
        return env

    def _torch_env(self, env: dict) -> dict | None:
        """The inputs in torch float64, when torch is there to be the gradient reference."""
        from tritonflow.fuzz.grad import torch_available, torch_modules
        if not torch_available():
            return None
        import torch
        tenv = torch_modules()
        tenv.update({k: torch.from_numpy(v.numpy()) for k, v in env.items() if isinstance(v, tf.Tensor)})
        return tenv

    def _values(self, env: dict) -> list:
        return [k for k, v in env.items() if isinstance(v, tf.Tensor)]

    def _pick(self, names: list) -> str:
        # Prefer recent values so programs grow chains, not only fans of the inputs.
        weights = np.arange(1, len(names) + 1, dtype=np.float64) ** 1.5
        return names[int(self.rng.choice(len(names), p=weights / weights.sum()))]

    def _near_kink(self, env: dict) -> bool:
        for expr in self._kinks:
            value = _evaluate(expr, env)
            if value is None:
                continue
            array = np.abs(np.asarray(value.numpy(), np.float64))
            if array.size and array.min() < KINK_MARGIN * max(1.0, float(array.max())):
                return True
        return False

    def _candidate(self, env: dict, prog: Program, dtype: str) -> str | None:
        is_float = D.as_dtype(dtype).is_floating_point
        names = self._values(env)
        a = self._pick(names)
        x = env[a]
        cats = list(CATEGORY_WEIGHTS)
        weights = np.array([CATEGORY_WEIGHTS[c] for c in cats])
        cat = cats[int(self.rng.choice(len(cats), p=weights / weights.sum()))]
        choice = self.rng.choice
        if cat == "unary":
            template = str(choice(FLOAT_UNARY if is_float else INT_UNARY))
        elif cat == "binary":
            template = str(choice(FLOAT_BINARY if is_float else INT_BINARY))
        elif cat == "reduce":
            template = str(choice(FLOAT_REDUCE if is_float else INT_REDUCE))
        elif cat == "norm":
            if not is_float or x.ndim == 0:
                return None
            template = str(choice(NORMS))
        elif cat == "view":
            template = str(choice(VIEWS))
        else:
            template = str(choice(MATMULS))
        if self.grad and any(word in template for word in _NOT_FOR_GRAD):
            return None
        b = self._pick(names)
        c = str(choice([n for n, _ in prog.inputs]))
        ndim = max(x.ndim, 1)
        dims = "None"
        if x.ndim and self.rng.random() < 0.8:
            count = int(self.rng.integers(1, x.ndim + 1))
            dims = str(tuple(sorted(int(d) for d in self.rng.choice(x.ndim, size=count, replace=False))))
        perm = tuple(int(p) for p in self.rng.permutation(x.ndim))
        fields = dict(a=a, b=b, c=c, dims=dims, k=bool(self.rng.random() < 0.4),
                      d=int(self.rng.integers(-ndim, ndim)), d1=int(self.rng.integers(0, x.ndim + 1)), perm=perm)
        self._kinks = [k.format(**fields) for k in kink_values(template)] if self.grad else []
        return template.format(**fields)


def _raised_by_the_line_itself(exc: BaseException) -> bool:
    """True when the template's own Python (`v.shape[0]` of a 0-d value) failed, not tritonflow."""
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename == "<string>"


def _torch_runs(expr: str, torch_env: dict, name: str) -> bool:
    from tritonflow.fuzz.grad import torch_expr
    try:
        with warnings.catch_warnings():   # torch's deprecation notes (x.T of a 1-D tensor)
            warnings.simplefilter("ignore")
            torch_env[name] = eval(torch_expr(expr), torch_env)  # noqa: S307 - the fuzzer's own text
    except Exception:  # noqa: BLE001 - any failure means torch cannot be the reference for this line
        return False
    return True


def _names_in(expr: str) -> set:
    return set(re.findall(r"\b[xv]\d+\b", expr))


def _evaluate(expr: str, env: dict):
    try:
        value = eval(expr, env)  # noqa: S307 - the fuzzer's own generated text
    except TritonflowError:
        return None
    if not isinstance(value, tf.Tensor) or value.numel() > 8192:
        return None
    return value


def _range_limit(dtype: str) -> float:
    dt = D.as_dtype(dtype)
    if dt.is_floating_point:
        return float(D.finfo(dt).max) / 16  # headroom: the backend's own rounding may not overflow either
    return float(D.iinfo(dt).max)


def _in_range(value, limit: float) -> bool:
    array = np.asarray(value.numpy())
    if array.dtype == np.bool_ or array.size == 0:
        return True
    array = array.astype(np.float64)
    return bool(np.all(np.isfinite(array)) and np.max(np.abs(array)) <= limit)


def generate(seed: int, dtypes: tuple | None = None, max_nodes: int = 8,
             grad: bool = False) -> tuple[Program, int, list]:
    """A valid program from `seed` (one to differentiate with `grad`), how many candidate lines
    were regenerated for overflow or kinks, and the eager crashes met on the way (program text,
    line, error)."""
    gen = Generator(seed, dtypes, max_nodes, grad)
    prog = gen.program()
    return prog, gen.rejected, gen.crashes
