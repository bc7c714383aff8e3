"""`tritonflow.explain(fn, *args, **kwargs)`: what jit does with a function, in words.

Framework stage: introspection over the jit cache. Compiles `fn` for these arguments the way a
call would (reusing a JitFunction's cache, so its recompile history shows) without running it,
and reports the guards, the IR after each pass, the kernels with the IR nodes and user lines
each one holds, the recompiles with their reasons and, when shapes alone keep recompiling it,
what to do about it. `.to_dot()` draws the final IR with one cluster per kernel. With
`target="sm_90"` (any GPU target) it also compiles the kernels for that target ahead of time
(tritonflow/aot.py) and shows the resource table and the cost model; arguments may then be
`tritonflow.TensorSpec`s instead of tensors.
"""
from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass, field

from tritonflow.ir.graph import Graph, format_graph
from tritonflow.spec_check import section

_NODE_REF = re.compile(r"^\s*%([0-9]+):")
_LOCATION = re.compile(r"#\s*(\S+:[0-9]+)\s*$")


@dataclass
class ExplainedKernel:
    """One generated kernel: its name, kind, Triton source, and the IR nodes and user lines it holds."""

    name: str
    kind: str
    source: str
    path: str
    ir_lines: list            # the IR text lines of the nodes it computes (its inputs marked "(input)")
    node_indices: list        # their positions in the final graph's node list (%N)
    user_lines: list          # the user's file:line each of those nodes came from, in order

    def __str__(self) -> str:
        head = f"kernel {self.name}" + (f" ({self.kind})" if self.kind else "")
        lines = [head]
        if self.path:
            lines.append(f"  file: {self.path}")
        if self.user_lines:
            lines.append(f"  user lines: {', '.join(self.user_lines)}")
        lines += section("IR nodes", self.ir_lines)
        lines += section("source", self.source.rstrip().splitlines())
        return "\n".join(lines)


def _explain_kernel(info) -> ExplainedKernel:
    ir_lines = [str(line) for line in getattr(info, "node_lines", [])]
    indices, user_lines = [], []
    for text in ir_lines:
        if text.rstrip().endswith("(input)"):
            continue
        ref = _NODE_REF.match(text)
        if ref:
            indices.append(int(ref.group(1)))
        loc = _LOCATION.search(text)
        if loc and loc.group(1) not in user_lines:
            user_lines.append(loc.group(1))
    return ExplainedKernel(name=str(getattr(info, "name", "kernel")), kind=str(getattr(info, "kind", "")),
                           source=str(getattr(info, "source", "")), path=str(getattr(info, "path", "")),
                           ir_lines=ir_lines, node_indices=indices, user_lines=user_lines)


@dataclass
class Explanation:
    """The result of explain(): attributes for programs, `str()` for people."""

    name: str
    backend: str
    device: str
    guards: list
    passes: list                          # (pass name, IR text after it), starting with "trace"
    final_graph: Graph
    kernels: list = field(default_factory=list)
    recompiles: list = field(default_factory=list)
    suggestion: str = ""
    aot: object = None                    # kernels/aot.AotReport when explain() was given a target

    @property
    def graph(self) -> str:
        """The final IR text (after every pass)."""
        return format_graph(self.final_graph)

    def __str__(self) -> str:
        out = [f"tritonflow.explain: {self.name} (backend {self.backend}, device {self.device})", ""]
        out.append("Guards (the compiled graph is reused while all of these hold):")
        out += [f"  - {g}" for g in self.guards] or ["  (none)"]
        out.append("")
        out.append("IR after each pass:")
        previous = None
        for name, text in self.passes:
            if text == previous:
                out.append(f"--- after {name}: unchanged")
                continue
            out.append(f"--- after {name}:")
            out.append(text)
            previous = text
        out.append("")
        if self.kernels:
            out.append(f"Kernels ({len(self.kernels)}):")
            for kernel in self.kernels:
                out.append(str(kernel))
                out.append("")
        elif self.backend == "numpy":
            out.append("Kernels: none (the numpy backend runs the graph in the NumPy interpreter)")
            out.append("")
        elif self.backend == "c":
            out.append("Kernels: none (no region of this graph is large enough to be worth compiling: "
                       "the c backend runs it with the NumPy meanings)")
            out.append("")
        else:
            out.append("Kernels: none")
            out.append("")
        if self.recompiles:
            out.append(f"Recompiles ({len(self.recompiles)}):")
            out += [f"  {i + 1}. {reason}" for i, reason in enumerate(self.recompiles)]
        else:
            out.append("Recompiles: none")
        if self.suggestion:
            out.append("")
            out.append(f"Suggestion: {self.suggestion}")
        if self.aot is not None:
            out += ["", f"Compiled ahead of time for {self.aot.target.name}:", str(self.aot)]
        return "\n".join(out)

    __repr__ = __str__

    def to_dot(self) -> str:
        """Graphviz DOT of the final IR; each kernel's nodes form a `subgraph cluster_N`.

        Without kernels (the numpy backend) the nodes are grouped by the user line they came from.
        """
        graph = self.final_graph
        names = {}
        lines = [f'digraph "{_escape(graph.name)}" {{', "  rankdir=TB;", '  node [shape=box, fontname="monospace"];']
        for node in graph.inputs:
            ident = f"in_{_ident(node.name)}"
            names[id(node)] = ident
            lines.append(f'  {ident} [label="%{_escape(node.name)}: {_escape(str(node.type))}", shape=ellipse];')
        node_ids = []
        for index, node in enumerate(graph.nodes):
            ident = f"n{index}"
            names[id(node)] = ident
            node_ids.append(ident)
        groups = self._groups()
        grouped = set()
        for number, (label, members) in enumerate(groups):
            lines.append(f"  subgraph cluster_{number} {{")
            lines.append(f'    label="{_escape(label)}";')
            for index in members:
                lines.append(f"    {_node_decl(graph, index)}")
                grouped.add(index)
            lines.append("  }")
        for index in range(len(graph.nodes)):
            if index not in grouped:
                lines.append(f"  {_node_decl(graph, index)}")
        for node in graph.nodes:
            for inp in node.inputs:
                if id(inp) in names:
                    lines.append(f"  {names[id(inp)]} -> {names[id(node)]};")
        for position, node in enumerate(graph.outputs):
            lines.append(f'  out{position} [label="output {position}", shape=ellipse];')
            lines.append(f"  {names.get(id(node), 'missing')} -> out{position};")
        lines.append("}")
        return "\n".join(lines)

    def _groups(self) -> list:
        """(label, node indices) per cluster: one per kernel, else one per user source line."""
        count = len(self.final_graph.nodes)
        if self.kernels and any(k.node_indices for k in self.kernels):
            groups, seen = [], set()
            for kernel in self.kernels:
                members = [i for i in kernel.node_indices if 0 <= i < count and i not in seen]
                seen.update(members)
                if members:
                    groups.append((f"kernel {kernel.name}", members))
            return groups
        by_line: dict = {}
        for index, node in enumerate(self.final_graph.nodes):
            if node.op == "constant":
                continue
            key = node.loc.short() if node.loc is not None else "(no source line)"
            by_line.setdefault(key, []).append(index)
        return list(by_line.items())


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", str(name))


def _escape(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _node_decl(graph: Graph, index: int) -> str:
    from tritonflow.ir.graph import format_constant
    node = graph.nodes[index]
    rhs = f"constant {format_constant(node.attrs['value'])}" if node.op == "constant" else node.op
    parts = [f"%{index}: {node.type} = {rhs}"]
    if node.loc is not None:
        parts.append(node.loc.short())
    label = "\\n".join(_escape(p) for p in parts)  # DOT's own line break inside a label
    return f'n{index} [label="{label}"];'


def _suggestion(reasons: list, dynamic: bool) -> str:
    if not reasons:
        return ""
    shape_only = all("shape changed" in r for r in reasons)
    statics = [r for r in reasons if r.startswith("static argument")]
    if shape_only and not dynamic:
        return ("it recompiled only because tensor shapes changed; tritonflow.jit(fn, dynamic=True) compiles "
                "one graph whose leading dims are symbolic, or pad inputs to a few fixed sizes")
    if statics and len(statics) == len(reasons):
        return ("it recompiled because a non-tensor (static) argument changed value; each value compiles its own "
                "graph, so pass a value that varies from call to call as a tensor instead")
    return ""


def _with_names(guards: list, graph: Graph, n_args: int) -> list:
    """'tensor argument 0: ...' -> 'tensor argument 0 (%x): ...' using the graph's input names."""
    out = []
    for line in guards:
        match = re.match(r"tensor argument ([0-9]+):", line)
        if match and int(match.group(1)) < min(n_args, len(graph.inputs)):
            index = int(match.group(1))
            line = line.replace(match.group(0), f"tensor argument {index} (%{graph.inputs[index].name}):", 1)
        out.append(line)
    return out


def explain(fn, *args, target=None, **kwargs) -> Explanation:
    """Compile `fn` (a function or a jitted one) for these arguments, without running it, and
    explain the result: guards, IR after each pass, kernels, recompiles; with `target`, the
    ahead-of-time resource table and cost model for that GPU too."""
    from tritonflow.jit_function import as_jit_function
    report = None
    if target is not None:
        from tritonflow import aot
        report = aot.compile(fn, *args, target=target, **kwargs)
        args, kwargs = aot.static_meta_arguments(args, kwargs)
    jitted, args, kwargs = as_jit_function(fn, args, kwargs, who="explain")
    entry, _ = jitted.entry_for(args, kwargs)
    runner = getattr(entry, "runner", None)
    kernels = [_explain_kernel(k) for k in (getattr(runner, "kernels", None) or [])]
    traced_graph = entry.traced.graph
    n_args = getattr(entry.traced, "n_args", 0)
    name = jitted.display_name
    return Explanation(
        name=name, backend=entry.backend, device=entry.device,
        guards=_with_names(list(entry.guards), traced_graph, n_args),
        passes=list(entry.pass_record), final_graph=entry.graph, kernels=kernels,
        recompiles=_with_names(list(jitted.recompile_reasons), traced_graph, n_args),
        suggestion=_suggestion(list(jitted.recompile_reasons), jitted.dynamic), aot=report,
    )


class _CallableModule(types.ModuleType):
    """`import tritonflow.explain` binds the package attribute to this module; calling it still explains."""

    def __call__(self, fn, *args, **kwargs) -> Explanation:
        return explain(fn, *args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
