"""Lowering stage: the per-kernel code generation context and the rendered kernel.

A `KernelContext` owns what one kernel's emitters share: the iteration spaces and their masks,
the index ranges the simplifier relies on, the pointer and size arguments the source uses, and
how anchors (graph inputs, stored buffers, this kernel's own reduction results) are read, and
the variable names (one numbering with the IR: `t4` holds %4). `render()` assembles the module
text (render.py): docstring, imports, one @triton.jit function with named pointer arguments and
constexpr block sizes, and a short comment per IR node.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import sympy

from tritonflow.kernels.codegen import triton_types as KD
from tritonflow.kernels.codegen import indexing as ix
from tritonflow.kernels.codegen.emit import NotFusable, Val, is_inlined
from tritonflow.kernels.codegen.render import docstring, drop_dead_assignments, module_text
from tritonflow.ir.graph import Node


@dataclass
class ArgSpec:
    """One runtime argument: a buffer pointer (ref: node), a size symbol, or a stride (node, dim)."""

    name: str
    kind: str  # "buffer" | "symbol" | "stride"
    ref: object


@dataclass
class LoadRecord:
    """One load the kernel emits from a buffer: the node, its offset in the kernel's index variables,
    and the kernel's iteration spaces (the static cost model, kernels/cost_model.py, evaluates it)."""

    node: Node
    offset: object                  # sympy expression
    spaces: list
    rare: bool = False              # emitted on a path only special inputs take (inf/NaN fallbacks)


@dataclass
class GeneratedKernel:
    name: str
    kind: str
    source: str
    node_lines: list
    args: list                      # ArgSpec, in signature order
    constexprs: dict                # name -> value, passed at launch
    grid: Callable                  # (symbols: dict) -> tuple
    numel: Callable                 # (symbols) -> int: elements written; 0 skips the launch
    config: dict
    reads: list = field(default_factory=list)    # anchor nodes read from buffers
    writes: list = field(default_factory=list)   # buffer nodes written
    loads: list = field(default_factory=list)    # LoadRecord per emitted load of a buffer


class KernelContext:
    """Shared state of one kernel's code generation (see module docstring)."""

    def __init__(self, schedule, layout: dict, wide: bool) -> None:
        self.schedule = schedule
        self.layout = layout              # graph input name -> True if contiguous
        self.wide = wide                  # 64-bit indexing
        self.ranges = ix.Ranges()
        self.spaces: list[ix.Space] = []
        self.symbol_masks: dict = {}
        self.names: set = set()           # variable names taken in this kernel
        self.pointers: dict = {}          # id(node) -> (name, node)
        self.members: dict = {}           # id(reduction) -> row flat index expression
        self.member_vals: dict = {}       # id(reduction) -> variable holding its row value
        self.member_refs: set = set()
        self.deps: dict = {}              # id(anchor) -> node read from a buffer
        self.external_symbols: set = set(schedule.size_symbols)
        self.stride_args: dict = {}       # symbol name -> (node, dim)
        self.ir_lines: list = []          # the IR lines of the nodes this kernel reads or computes
        self.described: dict = {}         # id(node) -> node, for the same nodes
        self.constants: dict = {}         # id(constant node) -> node, the constants it uses
        self.defining: set = set()        # ids of nodes this kernel computes (never read back)
        self.helpers: dict = {}           # name -> source of a @triton.jit function the kernel calls
        self.loads: list = []             # LoadRecord per emitted buffer load
        self._rare = False

    # ------------------------------------------------------------ names and spaces

    def unique(self, name: str) -> str:
        """`name`, or `name_1`, `name_2`, ... if taken: every variable is assigned in one place."""
        found, k = name, 0
        while found in self.names:
            k += 1
            found = f"{name}_{k}"
        self.names.add(found)
        return found

    def name_for(self, node: Node, suffix: str = "") -> str:
        """A fresh variable for `node`'s value (`t4` for %4) or a step towards it (`t4_in`)."""
        return self.unique(self.schedule.value_name(node) + suffix)

    def add_space(self, space: ix.Space) -> ix.Space:
        space.register(self.ranges)
        self.spaces.append(space)
        return space

    def masks_for_symbols(self, names: set) -> list:
        masks = []
        for space in self.spaces:
            own = {v.name for v in space.variables} | {space.flat_name}
            own |= {s.name for s in space.tail_symbols.values()}
            if names & own and space.mask_name and space.mask_name not in masks:
                masks.append(space.mask_name)
        for name in sorted(names):
            for m in self.symbol_masks.get(name, ()):
                if m not in masks:
                    masks.append(m)
        return masks

    def rewrite_offset(self, expr):
        expr = sympy.expand(sympy.sympify(expr))
        for space in self.spaces:
            expr = space.rewrite_tail(expr)
        return expr

    def describe(self, node: Node) -> str:
        """List `node` among the kernel's IR nodes; returns its short form for a line's comment."""
        if id(node) not in self.described:
            self.described[id(node)] = node
            self.ir_lines.append(self.schedule.node_line(node))
        return self.schedule.short_line(node)

    @contextlib.contextmanager
    def rarely_run(self):
        """Loads emitted inside are on a path only special inputs take (recorded as `rare`)."""
        before, self._rare = self._rare, True
        try:
            yield
        finally:
            self._rare = before

    # ------------------------------------------------------------ buffers

    def pointer(self, node: Node) -> str:
        found = self.pointers.get(id(node))
        if found is None:
            name = self.schedule.buffer_name(node) + "_ptr"
            self.pointers[id(node)] = (name, node)
            return name
        return found[0]

    def strides(self, node: Node) -> list:
        if node.op == "input" and not self.layout.get(node.name, True):
            out = []
            for d in range(node.type.ndim):
                name = f"{self.schedule.buffer_name(node)}_stride{d}"
                self.stride_args[name] = (node, d)
                self.external_symbols.add(name)
                out.append(sympy.Symbol(name, integer=True, nonnegative=True))
            return out
        return ix.contiguous_strides(node.shape)

    def load_buffer(self, emitter, node: Node, index: tuple, conds: tuple) -> Val:
        ptr = self.pointer(node)
        offset = sum((i * s for i, s in zip(index, self.strides(node)) if i != 0), sympy.Integer(0))
        self.loads.append(LoadRecord(node, offset, self.spaces, self._rare))
        return emitter.load(node, ptr, offset, conds)

    def anchor_value(self, emitter, node: Node, index: tuple, conds: tuple) -> Optional[Val]:
        if id(node) in self.members:
            flat = ix.linearize(index, node.shape)
            if sympy.expand(flat - self.members[id(node)]) != 0:
                raise NotFusable(f"{self.schedule.node_line(node)} is read off its row")
            self.member_refs.add(id(node))
            name = self.member_vals.get(id(node), self.schedule.value_name(node))
            return Val(name, KD.compute_type(node.dtype), shaped=True)
        if node.op == "input":
            return self.load_buffer(emitter, node, index, conds)
        forced = self.schedule.is_forced_anchor(node) and id(node) not in self.defining
        if node.op == "constant" or (is_inlined(node) and not forced):
            return None
        self.deps[id(node)] = node
        return self.load_buffer(emitter, node, index, conds)

    # ------------------------------------------------------------ rendering

    def index_prologue(self, space: ix.Space, printer: ix.TritonPrinter, used: set, indent: str) -> list:
        """Definitions of the per-dim variables and tail symbols of `space` that `used` names."""
        lines = []
        for k, symbol in sorted(space.tail_symbols.items()):
            if symbol.name in used:
                lines.append(f"{indent}{symbol.name} = {printer(space.tail_definition(k))}")
        for d, var in enumerate(space.variables):
            if var.name in used:
                lines.append(f"{indent}{var.name} = {printer(space.var_definition(d))}")
        return lines

    def signature(self, printers: list, constexpr_names: list) -> tuple:
        used: set = set()
        for p in printers:
            used |= p.used
        args = [ArgSpec(name, "buffer", node) for name, node in self.pointers.values()]
        for name in sorted(used & self.external_symbols):
            if name in self.stride_args:
                args.append(ArgSpec(name, "stride", self.stride_args[name]))
            else:
                args.append(ArgSpec(name, "symbol", name))
        names = [a.name for a in args] + [f"{c}: tl.constexpr" for c in constexpr_names]
        return args, names

    def render(self, name: str, summary: str, params: list, body: list) -> str:
        """The kernel's module: docstring, imports, helper functions and the @triton.jit kernel."""
        kernel = "@triton.jit\n" + f"def {name}(\n" + "".join(f"    {p},\n" for p in params) + "):\n"
        kernel += "\n".join(drop_dead_assignments(body)) + "\n"
        constants = [self.schedule.node_line(n) for n in self.constants.values()]
        ir = [line for n, line in sorted(zip(self.described.values(), self.ir_lines), key=self._graph_order)
              if n.op != "constant"]
        doc = docstring(name, summary, self._specialisation(params), ir, constants)
        return module_text(doc, list(self.helpers.values()), kernel)

    def _graph_order(self, item: tuple) -> tuple:
        """Inputs first, then the IR's own order (%0, %1, ...), then nodes the scheduler made."""
        node = item[0]
        number = self.schedule.number(node)
        if node.op == "input":
            return (0, 0)
        return (1, number) if isinstance(number, int) else (2, 0)

    def _specialisation(self, params: list) -> list:
        """What the kernel's source fixes (sizes, layouts, index width) and what arrives at launch."""
        sizes = sorted({int(d) for n in self.described.values() for d in n.shape
                        if isinstance(d, int) or getattr(d, "is_number", False)} - {0, 1})
        inputs = [n for n in self.described.values() if n.op == "input"]
        strided = [self.schedule.ref(n) for n in inputs if not self.layout.get(n.name, True)]
        fixed = [f"sizes {', '.join(map(str, sizes))}" if sizes else "no size above 1",
                 "strided " + ", ".join(strided) if strided else "contiguous inputs" if inputs else "",
                 "64-bit indices" if self.wide else "32-bit indices"]
        lines = ["Specialised on: " + ", ".join(part for part in fixed if part) + "."]
        symbols = [p for p in params if p in self.external_symbols and p not in self.stride_args]
        passed = ([f"sizes {', '.join(symbols)}"] if symbols else []) + \
            ([f"the strides of {', '.join(strided)}"] if strided else [])
        if passed:
            lines.append("Passed at launch: " + "; ".join(passed) + ".")
        return lines


def symbol_evaluator(expr) -> Callable:
    """A fast (symbols dict) -> int function for a size expression."""
    expr = sympy.sympify(expr)
    if expr.is_number:
        value = int(expr)
        return lambda symbols: value
    names = sorted(s.name for s in expr.free_symbols)
    code = compile(str(expr), "<size>", "eval")
    return lambda symbols: int(eval(code, {}, {n: symbols[n] for n in names}))


def _program_offset(wide: bool, block: str) -> str:
    program = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    return f"    xoffset = {program} * {block}"


def flat_program_head(printer, numel, wide: bool) -> list:
    """Opening lines of a kernel whose program owns XBLOCK consecutive elements of `numel`: the
    size, this program's elements (`xindex`) and their mask. `wide` makes the offset 64-bit."""
    return [f"    xnumel = {printer(numel)}", _program_offset(wide, "XBLOCK"),
            "    xindex = xoffset + tl.arange(0, XBLOCK)", "    xmask = xindex < xnumel"]


def row_program_head(printer, outer_numel, inner_numel, wide: bool) -> list:
    """Opening lines of a kernel whose program owns XBLOCK rows of `outer_numel` ([XBLOCK, 1])
    and walks `inner_numel` columns: sizes, this program's rows and their mask. `wide` makes the
    row offset 64-bit."""
    return [
        f"    xnumel = {printer(outer_numel)}",
        f"    rnumel = {printer(inner_numel)}",
        _program_offset(wide, "XBLOCK"),
        "    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]",
        "    xmask = xindex < xnumel",
    ]
