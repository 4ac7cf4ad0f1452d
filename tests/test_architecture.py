"""The shape of the code, read from the source with `ast` (nothing is imported):

- lstmctl's import graph has no cycle, counting imports inside functions too (a cycle that only
  closes at call time still ties two layers together, and breaks the day someone hoists it);
- only cli.py imports lstmctl modules inside functions (lazily, for `lstmctl --help` speed);
- the leaves (errors, schema, registry) import nothing above them;
- no hand-written module is over 400 lines, and the training loop stays readable.

Imports under `if TYPE_CHECKING:` are left out: they never run.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "lstmctl"
MAX_LINES = 400
MAX_LOOP_LINES = 300  # train/loop.py: the step/epoch loop, readable top to bottom
# Modules that may import lstmctl modules inside functions, and why.
LAZY_ALLOWED = {
    "lstmctl.cli": "imports each command's module when that command runs, so `lstmctl --help` stays fast",
    # lstmctl/__init__.py runs before every lstmctl module: importing lstmctl.api (torch, the whole
    # stack) at its top would make `import lstmctl.errors` load everything, and close a cycle
    # through every module api imports. Its load_run is a thin forwarder.
    "lstmctl": "lstmctl.load_run imports lstmctl.api when called, so `import lstmctl.<leaf>` stays light",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the lstmctl module imported
    line: int
    in_function: bool

    def __str__(self) -> str:
        where = "inside a function" if self.in_function else "at module level"
        return f"{self.source} -> {self.target} ({MODULES[self.source].relative_to(REPO)}:{self.line}, {where})"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(source: str, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` reads from, relative levels resolved."""
    if not node.level:
        return node.module or ""
    is_package = MODULES[source].name == "__init__.py"
    base = source.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(source: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The lstmctl modules an import statement executes: `from lstmctl import metrics` is the
    module lstmctl.metrics; `from lstmctl.data import DataBundle` is the package lstmctl.data."""
    found = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        module = _resolve(source, node)
        names = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
    for name in names:
        while name and name not in MODULES:  # `import lstmctl.x.y` where y is not a module: its parent
            name = name.rpartition(".")[0]
        if name.startswith("lstmctl") and name in MODULES and name != source:
            found.append(name)
    return found


def imports_of(source: str) -> list[Import]:
    tree = ast.parse(MODULES[source].read_text(encoding="utf-8"), str(MODULES[source]))
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, in_function)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.extend(Import(source, t, node.lineno, in_function) for t in dict.fromkeys(_targets(source, node)))
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def import_graph() -> dict[str, list[Import]]:
    return {m: imports_of(m) for m in MODULES}


def find_cycles(graph: dict[str, list[Import]]) -> list[list[Import]]:
    """One cycle per strongly connected component of more than one module (Tarjan), as the
    chain of imports that closes it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def strongconnect(v: str) -> None:  # recursion depth is bounded by the module count
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for edge in graph[v]:
            w = edge.target
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in graph:
        if v not in index:
            strongconnect(v)

    cycles = []
    for component in components:
        start = min(component)
        # breadth-first from start back to start, inside the component: the shortest cycle through it
        paths: dict[str, list[Import]] = {start: []}
        queue = [start]
        cycle = None
        while queue and cycle is None:
            v = queue.pop(0)
            for edge in graph[v]:
                if edge.target == start:
                    cycle = paths[v] + [edge]
                    break
                if edge.target in component and edge.target not in paths:
                    paths[edge.target] = paths[v] + [edge]
                    queue.append(edge.target)
        cycles.append(cycle)
    return cycles


def test_the_graph_sees_every_kind_of_import():
    """The reader itself: relative imports, `from pkg import module`, function-level imports."""
    graph = import_graph()
    targets = {m: {e.target for e in edges} for m, edges in graph.items()}
    assert "lstmctl.errors" in targets["lstmctl.config"]
    assert "lstmctl.models.cells" in targets["lstmctl.models.layers"]  # from lstmctl.models import cells
    assert any(e.in_function for e in graph["lstmctl.cli"]), "cli.py's lazy command imports are not seen"
    source = "lstmctl.models.layers"
    node = ast.parse("from . import cells\nfrom .base import x\nfrom .. import registry").body
    assert [_targets(source, n) for n in node] == [["lstmctl.models.cells"], ["lstmctl.models.base"], ["lstmctl.registry"]]
    cyc = {"a": [Import("lstmctl.cli", "b", 1, False)], "b": [Import("lstmctl.cli", "a", 2, True)]}
    assert [[e.line for e in c] for c in find_cycles(cyc)] == [[1, 2]]


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    report = "\n\n".join("cycle:\n  " + "\n  ".join(map(str, c)) for c in cycles)
    assert not cycles, f"lstmctl's imports form {len(cycles)} cycle(s):\n\n{report}"


def test_only_cli_imports_lstmctl_modules_inside_functions():
    lazy = [e for m, edges in import_graph().items() if m not in LAZY_ALLOWED for e in edges if e.in_function]
    assert not lazy, "import these at the top of the module (only cli.py imports lazily):\n  " + "\n  ".join(map(str, lazy))


def test_the_leaves_import_nothing_above_them():
    """errors and schema import no lstmctl module; registry only those two (never a dataset or
    model family: lstmctl.config imports those, which registers them)."""
    graph = import_graph()
    allowed = {"lstmctl.errors": set(), "lstmctl.schema": set(), "lstmctl.registry": {"lstmctl.errors", "lstmctl.schema"}}
    for module, ok in allowed.items():
        wrong = [str(e) for e in graph[module] if e.target not in ok]
        assert not wrong, f"{module} must import only {sorted(ok) or 'no lstmctl module'}:\n  " + "\n  ".join(wrong)


def test_family_packages_import_no_family():
    """lstmctl/data/__init__.py and lstmctl/models/__init__.py import no family (a module that
    registers, i.e. imports lstmctl.registry): lstmctl.config does, so that data.base or
    models.base can be imported without every family and without a cycle through config."""
    graph = import_graph()
    for package in ("lstmctl.data", "lstmctl.models"):
        families = [str(e) for e in graph[package] if any(f.target == "lstmctl.registry" for f in graph[e.target])]
        assert not families, f"{package}/__init__.py imports families:\n  " + "\n  ".join(families)


def test_no_module_is_too_long():
    lines = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    long = {m: n for m, n in lines.items() if n > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them): {long}"
    assert lines["lstmctl.train.loop"] <= MAX_LOOP_LINES, f"train/loop.py has {lines['lstmctl.train.loop']} lines"
