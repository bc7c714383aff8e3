"""Kernels that are one program under other generated names (kernels/kernel_identity.py): the same
computation on differently named inputs and nodes shares a key; a different op, constant, size,
dtype or use of the arguments does not."""
from __future__ import annotations

from kernel_helpers import Builder
from tritonflow import dtypes as D
from tritonflow import kernels
from tritonflow.kernels.kernel_identity import canonical_source, program_key


def _gelu_layer(b: Builder, x, tag: str, op: str = "tanh", scale: float = 0.5, rows: int = 64):
    """(x * w + bias) through `op`, times `scale`, on inputs named after the layer."""
    w = b.input(f"w_{tag}", (rows, 128), D.float32)
    h = b("add", b("mul", x, w), b.input(f"bias_{tag}", (rows, 128), D.float32))
    return b("mul", b(op, h), b.const(scale))


def _only_kernel(build) -> object:
    b = Builder("layer")
    x = b.input("x", (64, 128), D.float32)
    (kernel,) = kernels.lower(b.finish(build(b, x)), target="sm_90").compiled_kernels
    return kernel


def _key(kernel) -> str:
    return program_key(kernel.generated.source, kernel.generated.name)


def test_two_layers_share_a_program_key_but_not_a_source():
    first = _only_kernel(lambda b, x: _gelu_layer(b, x, "layer0"))
    # The second layer: other input names, and its nodes numbered after an unrelated constant.
    second = _only_kernel(lambda b, x: (b.const(2.0), _gelu_layer(b, x, "layer17"))[1])
    assert first.generated.source != second.generated.source
    assert _key(first) == _key(second)
    assert "in_w_layer0_ptr" in first.generated.source
    assert "in_w_layer0_ptr" not in canonical_source(first.generated.source, first.generated.name)
    # One more multiply (by 1.0) is another program, so another key.
    assert _key(_only_kernel(lambda b, x: _gelu_layer(b, b("mul", x, b.const(1.0)), "layer0"))) != _key(first)


def test_a_different_op_constant_size_or_dtype_is_another_program():
    base = _key(_only_kernel(lambda b, x: _gelu_layer(b, x, "a")))
    assert _key(_only_kernel(lambda b, x: _gelu_layer(b, x, "a", op="exp"))) != base
    assert _key(_only_kernel(lambda b, x: _gelu_layer(b, x, "a", scale=0.25))) != base
    b = Builder("layer")
    x = b.input("x", (32, 128), D.float32)
    (smaller,) = kernels.lower(b.finish(_gelu_layer(b, x, "a", rows=32)), target="sm_90").compiled_kernels
    assert _key(smaller) != base
    b = Builder("layer")
    x = b.input("x", (64, 128), D.bfloat16)
    (half,) = kernels.lower(b.finish(_gelu_layer(b, b("cast", x, dtype=D.float32), "a")),
                            target="sm_90").compiled_kernels
    assert _key(half) != base


def test_canonical_text_keeps_structure_and_drops_only_names_and_comments():
    a = '"""doc"""\nimport triton\n\n@triton.jit\ndef k0(in_x_ptr, in_y_ptr):\n    t1 = tl.load(in_x_ptr)  # %1\n' \
        '    t2 = tl.load(in_y_ptr)\n    tl.store(in_x_ptr, t1 - t2)\n'
    swapped = a.replace("t1 - t2", "t2 - t1")
    renamed = a.replace("in_x_ptr", "in_q_ptr").replace("t1", "t9").replace("k0", "k3").replace("# %1", "# %9")
    assert canonical_source(a, "k0") == canonical_source(renamed, "k3")
    assert canonical_source(a, "k0") != canonical_source(swapped, "k0")
    assert canonical_source(a, "k0") != canonical_source(a.replace("tl.load(in_y_ptr)", "tl.load(in_x_ptr)"), "k0")
    assert canonical_source(a, "k0") != canonical_source(a.replace("    tl.store", "    if t1:\n        tl.store"), "k0")
    # Attributes keep their names even where they look generated: lib.t_a(x) is not lib.t_b(x).
    calls = "def k0(in_x_ptr):\n    t1 = lib.t_a(in_x_ptr)\n"
    assert canonical_source(calls, "k0") != canonical_source(calls.replace("lib.t_a", "lib.t_b"), "k0")
