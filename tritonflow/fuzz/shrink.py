"""Fuzzer stage: shrink a failing program while it still fails, and write it out as a reproducer.

Steps, repeated until none helps or the budget is spent: return an earlier value (dropping every
line after it), drop a line by forwarding one of its operands to its users, drop unused inputs,
and make size variables smaller. A step is kept only when the program still type-checks on the
reference and still fails the same way (mismatch stays mismatch, error stays error).
"""
from __future__ import annotations

import re

from tritonflow.fuzz.check import Outcome, check
from tritonflow.fuzz.program import Node, Program

NAME = re.compile(r"\b([xv]\d+)\b")


def _uses(expr: str) -> list:
    return list(dict.fromkeys(NAME.findall(expr)))


def _substitute(expr: str, old: str, new: str) -> str:
    return re.sub(rf"\b{re.escape(old)}\b", new, expr)


def _drop_line(prog: Program, index: int, replacement: str | None) -> Program:
    old = prog.nodes[index].name
    nodes = []
    for i, node in enumerate(prog.nodes):
        if i == index:
            continue
        expr = node.expr if replacement is None else _substitute(node.expr, old, replacement)
        nodes.append(Node(node.name, expr))
    outputs = [replacement if (o == old and replacement) else o for o in prog.outputs]
    outputs = [o for o in dict.fromkeys(outputs) if o.startswith("v") and any(n.name == o for n in nodes)]
    return prog.with_changes(nodes=nodes, outputs=outputs)


def _candidates(prog: Program):
    # 1. return one earlier value, dropping every line after it
    for k in range(len(prog.nodes) - 1):
        yield prog.with_changes(nodes=list(prog.nodes[:k + 1]), outputs=[prog.nodes[k].name])
    if len(prog.outputs) > 1:
        for out in prog.outputs:
            yield prog.with_changes(outputs=[out])
    # 2. drop one line, forwarding an operand (or nothing, when the line is unused)
    for index in range(len(prog.nodes) - 1, -1, -1):
        node = prog.nodes[index]
        used_later = any(node.name in _uses(n.expr) for n in prog.nodes[index + 1:]) or node.name in prog.outputs
        if not used_later:
            yield _drop_line(prog, index, None)
            continue
        for operand in _uses(node.expr):
            if operand.startswith("v") and len(prog.nodes) > 1:
                yield _drop_line(prog, index, operand)
            elif operand.startswith("x") and not (node.name in prog.outputs and len(prog.nodes) == 1):
                yield _drop_line(prog, index, operand)
    # 3. drop inputs nothing reads
    read = {name for n in prog.nodes for name in _uses(n.expr)}
    unused = [i for i, (name, _) in enumerate(prog.inputs) if name not in read]
    if unused:
        yield prog.with_changes(inputs=[inp for i, inp in enumerate(prog.inputs) if i not in unused])
    # 4. smaller sizes
    for var, size in enumerate(prog.sizes):
        for smaller in sorted({1, 2, 3, size // 2}):
            if 1 <= smaller < size:  # never 0: an empty tensor is a different failure
                sizes = list(prog.sizes)
                sizes[var] = smaller
                yield prog.with_changes(sizes=sizes)


def _valid(prog: Program) -> bool:
    return bool(prog.nodes) and bool(prog.outputs) and all(o.startswith("v") for o in prog.outputs)


def shrink(prog: Program, outcome: Outcome, backend: str, device: str = "cpu",
           budget: int = 80, checker=check) -> tuple[Program, Outcome]:
    """The smallest program found that fails like `outcome` (at most `budget` re-runs of `checker`)."""
    runs = 0
    progress = True
    while progress and runs < budget:
        progress = False
        for candidate in _candidates(prog):
            if runs >= budget:
                break
            if not _valid(candidate):
                continue
            runs += 1
            result = checker(candidate, backend, device)
            if result.status == outcome.status:
                prog, outcome = candidate, result
                progress = True
                break
    return prog, outcome


REPRO_TEMPLATE = '''"""tritonflow.fuzz reproducer: {title}

{detail}

Run it: python {filename}
It exits with status 1 while the {backend} backend disagrees with the float64 reference{what}.
"""
import os
import sys

try:  # Triton's interpreter must be switched on before triton is imported when there is no GPU
    import torch
    _cuda = torch.cuda.is_available()
except ImportError:
    _cuda = False
if not _cuda:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import tritonflow as tf  # noqa: E402
from {check_module} import {check_name} as check  # noqa: E402
from tritonflow.fuzz.program import Node, Program  # noqa: E402

F = tf.nn.functional


# The program, as plain tritonflow code ({describe}; inputs uniform in [-2, 2] from seed {seed}):
{source}

PROGRAM = Program(
    dtype={dtype!r},
    sizes={sizes!r},
    inputs={inputs!r},
    nodes=[
{nodes}
    ],
    outputs={outputs!r},
    input_seed={seed!r},
    tags={tags!r},
)

if __name__ == "__main__":
    outcome = check(PROGRAM, {backend!r}, {device!r})
    print(outcome.status, outcome.detail)
    sys.exit(1 if outcome.failed else 0)
'''


def reproducer(prog: Program, outcome: Outcome, backend: str, device: str, title: str, filename: str) -> str:
    grad = bool(prog.tags.get("grad"))
    nodes = "\n".join(f"        Node({n.name!r}, {n.expr!r})," for n in prog.nodes)
    return REPRO_TEMPLATE.format(title=title, detail=f"{outcome.status}: {outcome.detail}"[:3000],
                                 filename=filename, backend=backend, device=device, describe=prog.describe(),
                                 seed=prog.input_seed, source=prog.source(), dtype=prog.dtype, sizes=prog.sizes,
                                 inputs=prog.inputs, nodes=nodes, outputs=prog.outputs, tags=prog.tags,
                                 what=" on the gradients" if grad else "",
                                 check_module="tritonflow.fuzz.grad" if grad else "tritonflow.fuzz.check",
                                 check_name="check_grad" if grad else "check")
