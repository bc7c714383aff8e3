"""Layering: the imports of tritonflow/, kernels/ and tracer/ point one way and form no cycle.

Every module is read with `ast` (not imported): every `import` and `from ... import`, at module
level or inside a function, and every `importlib.import_module("literal")`, is an edge to the
module it names (`from package import name` names the submodule when there is one). Entering a
package to reach a submodule is not counted as an edge to the package's __init__: Python does
that for every import, and package __init__ files only re-export their own submodules.

The layers (DESIGN.md, "Layers"):
- core: errors, dtypes, environment, version, the IR, the op table, the interpreter and the numpy backend, the passes,
  Philox, storage, matmul precision, the backend registry — imports only the core;
- tracer (tritonflow.tracer) and kernels (tritonflow.kernels): the core and themselves;
- front end (everything else in tritonflow/): the core, the tracer and itself, never kernels
  (it reaches the lowering through the backend registry's object).
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"tritonflow": "tritonflow", "kernels": "tritonflow.kernels", "tracer": "tritonflow.tracer"}

CORE_MODULES = {
    "tritonflow._source_layout", "tritonflow.backends", "tritonflow.dtypes", "tritonflow.environment",
    "tritonflow.errors", "tritonflow.interpreter", "tritonflow.matmul_precision", "tritonflow.numpy_backend",
    "tritonflow.philox", "tritonflow.profile_hooks", "tritonflow.row_blocks", "tritonflow.storage", "tritonflow.target",
    "tritonflow.version",
}
CORE_PACKAGES = ("tritonflow.ir", "tritonflow.native", "tritonflow.ops", "tritonflow.passes")

# Cycles inside kernels/ that other work on issue 9 is removing, each written as the modules it
# goes through (back to the first). THIS SET MUST BE EMPTY WHEN ISSUE 9 CLOSES. The test fails on
# any cycle using an import not listed here, and on a listed cycle that no longer exists, so the
# set can only shrink: delete an entry in the change that breaks it.
_K = "tritonflow.kernels."
PENDING_KERNEL_CYCLES = {
}


def layer_of(module: str) -> str:
    if module == "tritonflow.kernels" or module.startswith("tritonflow.kernels."):
        return "kernels"
    if module == "tritonflow.tracer" or module.startswith("tritonflow.tracer."):
        return "tracer"
    if module in CORE_MODULES or any(module == p or module.startswith(p + ".") for p in CORE_PACKAGES):
        return "core"
    return "front end"


ALLOWED = {
    "core": {"core"},
    "tracer": {"core", "tracer"},
    "kernels": {"core", "kernels"},
    "front end": {"core", "tracer", "front end"},
}


def modules() -> dict:
    """Module name -> source file, for every .py file of the three folders."""
    found = {}
    for folder, prefix in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix] + parts)] = path
    return found


def _is_import_module_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name == "import_module" and isinstance(node.args[0].value, str)


def imported_names(tree: ast.AST, known: dict):
    """(dotted name, line) for every import in `tree`, function-level ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import at line {node.lineno}: write the absolute name"
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield (sub if sub in known else node.module), node.lineno
        elif _is_import_module_call(node):
            yield node.args[0].value, node.lineno


def import_graph() -> dict:
    """module -> {imported module of ours: first line}"""
    known = modules()
    graph: dict = {}
    for module, path in known.items():
        edges = graph.setdefault(module, {})
        for name, line in imported_names(ast.parse(path.read_text(), str(path)), known):
            while name and name not in known:  # `from tritonflow.dtypes import float32` -> the module
                name = name.rpartition(".")[0]
            if name and name != module:
                edges.setdefault(name, line)
    return graph


def strongly_connected(graph: dict) -> list:
    """The sets of modules that import each other, directly or not (Tarjan, iterative)."""
    index: dict = {}
    low: dict = {}
    on_stack: set = set()
    stack: list = []
    found = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def _cycle_edges(cycle: tuple) -> list:
    return [(cycle[i], cycle[(i + 1) % len(cycle)]) for i in range(len(cycle))]


def _shortest_cycle_through(graph: dict, edge: tuple, component: set) -> list:
    """A shortest cycle that uses `edge`, inside `component` (to print something readable)."""
    start, first = edge
    paths = {first: [start, first]}
    frontier = [first]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    return paths[node] + [start]
                if child in component and child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    return [start, first, "...", start]


def test_no_import_cycles_beyond_the_pending_kernel_ones():
    graph = import_graph()
    pending_edges = {e for cycle in PENDING_KERNEL_CYCLES for e in _cycle_edges(cycle)}
    problems = []
    for component in strongly_connected(graph):
        for a in sorted(component):
            for b, line in sorted(graph[a].items()):
                if b in component and (a, b) not in pending_edges:
                    cycle = _shortest_cycle_through(graph, (a, b), component)
                    problems.append(f"{a} -> {b} (line {line}) closes the cycle " + " -> ".join(cycle))
    assert not problems, "import cycles:\n  " + "\n  ".join(problems)


def test_every_pending_kernel_cycle_still_exists():
    """A cycle that is gone must leave PENDING_KERNEL_CYCLES, so the set only shrinks."""
    graph = import_graph()
    gone = [" -> ".join(cycle + (cycle[0],)) for cycle in sorted(PENDING_KERNEL_CYCLES)
            if any(b not in graph.get(a, {}) for a, b in _cycle_edges(cycle))]
    assert not gone, "no longer cycles, delete them from PENDING_KERNEL_CYCLES:\n  " + "\n  ".join(gone)


def test_imports_respect_the_layers():
    graph = import_graph()
    problems = []
    for a in sorted(graph):
        for b, line in sorted(graph[a].items()):
            if layer_of(b) not in ALLOWED[layer_of(a)]:
                problems.append(f"{a} ({layer_of(a)}) -> {b} ({layer_of(b)}) at line {line}")
    assert not problems, "imports against the layers:\n  " + "\n  ".join(problems)


def test_the_walk_sees_every_kind_of_import(tmp_path):
    """The checker itself: module-level, function-level, from-imports of submodules and
    import_module literals all count, and a cycle and a layer breach are both reported."""
    source = textwrap.dedent('''
        import tritonflow.dtypes
        from tritonflow import errors
        from tritonflow.ir.graph import Graph

        def later():
            from tritonflow.kernels import lowering
            import importlib
            return importlib.import_module("tritonflow.tracer.trace")
    ''')
    known = {"tritonflow.dtypes": 1, "tritonflow.errors": 1, "tritonflow.ir.graph": 1,
             "tritonflow.kernels.lowering": 1, "tritonflow.tracer.trace": 1}
    names = {name for name, _ in imported_names(ast.parse(source), known)}
    assert names == set(known) | {"importlib"}
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert strongly_connected(graph) == [{"a", "b", "c"}]
    assert layer_of("tritonflow.ops.registry") == "core" and layer_of("tritonflow.jit_function") == "front end"
    assert "front end" not in ALLOWED["core"] and "kernels" not in ALLOWED["front end"]


def test_the_layers_hold_the_modules_they_should():
    found = modules()
    for module in CORE_MODULES:
        assert module in found, f"{module} is listed as core but does not exist"
    for module in ("tritonflow.tensor_class", "tritonflow.dispatch", "tritonflow.api", "tritonflow.autograd",
                   "tritonflow.jit_function", "tritonflow.debug", "tritonflow.nn.modules", "tritonflow"):
        assert layer_of(module) == "front end", module
    assert layer_of("tritonflow.kernels.backend") == "kernels"
    assert layer_of("tritonflow.tracer.state") == "tracer"


def test_version_lives_in_the_core_and_matches_pyproject():
    import tritonflow
    from tritonflow.version import __version__
    declared = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert tritonflow.__version__ == __version__ == declared


IMPORT_ONLY = textwrap.dedent('''
    import sys
    import tritonflow
    import tritonflow.nn, tritonflow.optim, tritonflow.debug  # the front end, all of it
    x = tritonflow.ones(3).exp().sum()
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "triton")
                    or m == "tritonflow.kernels" or m.startswith("tritonflow.kernels."))
    print("LOADED", loaded)
''')


def test_import_tritonflow_loads_no_kernels_triton_or_torch():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", IMPORT_ONLY], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "LOADED []", proc.stdout
