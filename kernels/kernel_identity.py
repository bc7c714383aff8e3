"""Lowering stage: when two generated kernels are the same program — their source up to the names
the code generator derives from IR nodes and graph inputs, and without comments and docstrings.

The readable kernels name each value after its IR node (`t12`, `t12_in`), each buffer after its
graph input (`in_saved3_ptr`, `out0_ptr`) and say in comments where each line came from, so the
two layers of a model give two sources. Renamed consistently in order of first appearance, those
names no longer differ: equal canonical text means equal programs (every other token, attribute
names and keyword arguments included, is kept), so their compiles give the same registers, spills
and shared memory. The ahead-of-time resource check compiles one of each (kernels/aot.py).
"""
from __future__ import annotations

import hashlib
import io
import re
import tokenize

# Names the code generator derives from IR nodes (t12, t12_in) and graph inputs (t_x for a loaded
# value, in_x_ptr, out0_ptr, an intermediate buffer buf24_ptr): kernels/codegen/context.py.
_GENERATED_NAME = re.compile(r"(?:t\d+|t_\w+|in_\w+|out\d+|buf\d+)\w*\Z")
_SKIPPED = (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER)


def canonical_source(source: str, kernel_name: str) -> str:
    """`source` with comments and the module docstring dropped and the generated names (and the
    kernel's own name) replaced by `_n0_`, `_n1_`, ... in order of first appearance."""
    renamed: dict[str, str] = {}
    parts: list[str] = []
    first = True
    after_dot = False
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        kind, text = token.type, token.string
        if kind in _SKIPPED:
            continue
        if first:
            first = False
            if kind == tokenize.STRING:      # the module docstring
                continue
        if kind == tokenize.NAME and not after_dot and (text == kernel_name or _GENERATED_NAME.match(text)):
            # an attribute (tl.something) is never ours to rename: two kernels calling different
            # functions must keep different texts
            text = renamed.setdefault(text, f"_n{len(renamed)}_")
        elif kind == tokenize.INDENT:
            text = "<indent>"
        elif kind == tokenize.DEDENT:
            text = "<dedent>"
        parts.append(text)
        after_dot = kind == tokenize.OP and text == "."
    return " ".join(parts)


def program_key(source: str, kernel_name: str) -> str:
    """A short digest of `canonical_source`."""
    return hashlib.sha256(canonical_source(source, kernel_name).encode()).hexdigest()[:32]
