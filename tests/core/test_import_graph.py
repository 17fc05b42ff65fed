"""The import graph of core/: no cycle, and no import of a core module deferred into a function.

Parsed with `ast` (nothing is imported): `import core.x`, `from core.x import y` (y a submodule of
the package core.x counts as an import of core.x.y) and relative imports, resolved against the
modules that exist under core/.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(CORE.rglob("*.py"))}


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _known(name: str) -> str | None:
    """`name` if it is a module under core/, else its closest enclosing module that is."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if _is_package(module) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The core modules an import statement runs.

    Importing core.a.b also runs the package core.a, unless `module` lives in core.a (its own
    packages are initialised before it runs); `from core.a import name` where name is no submodule
    reads the package core.a itself, which counts even from inside it.
    """
    found: set[str] = set()
    if isinstance(node, ast.Import):
        wanted = [(a.name, False) for a in node.names]
    else:
        base = _absolute(module, node)
        wanted = []
        for a in node.names:
            sub = f"{base}.{a.name}"
            wanted.append((sub, False) if sub in MODULES else (base, True))
    for name, reads_package in wanted:
        known = _known(name) if name == "core" or name.startswith("core.") else None
        if known is None or known == "core":
            continue
        found.add(known)
        if reads_package and known != name:
            continue
        parent = known.rpartition(".")[0]
        while parent and parent != "core":
            if not module.startswith(parent + "."):
                found.add(parent)
            parent = parent.rpartition(".")[0]
    found.discard(module)
    return found


def _imports(module: str) -> tuple[set[str], list[str]]:
    """(modules imported at module level, descriptions of function-level core imports)."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    top: set[str] = set()
    deferred: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                if _type_checking_only(node, child):
                    continue
                targets = _targets(module, child)
                if in_function and targets:
                    deferred.append(f"{MODULES[module].relative_to(ROOT)}:{child.lineno}: {ast.unparse(child)}")
                elif not in_function:
                    top.update(targets)
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, nested)

    visit(tree, False)
    return top, deferred


def _type_checking_only(parent: ast.AST, node: ast.AST) -> bool:
    """An import under `if TYPE_CHECKING:` does not run."""
    return (
        isinstance(parent, ast.If)
        and node in parent.body
        and isinstance(parent.test, ast.Name | ast.Attribute)
        and ast.unparse(parent.test).endswith("TYPE_CHECKING")
    )


def _graph() -> dict[str, set[str]]:
    return {m: _imports(m)[0] for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (Tarjan), as a path a -> ... -> a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return [_path_through(graph, set(c)) for c in components]


def _path_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth first)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return sorted(component)


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "core.runner" in graph["core.pipelines"]
    assert "core.plans" in graph["core.runner"]


def test_relative_imports_resolve() -> None:
    node = ast.parse("from .base import Connector").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _targets("core.connectors.postgres", node) == {"core.connectors.base"}  # its own package: already run
    assert _targets("core.pipelines", node) == set()  # core.base does not exist
    node = ast.parse("from core.connectors.base import Connector").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _targets("core.pipelines", node) == {"core.connectors", "core.connectors.base"}
    node = ast.parse("from core.fullload import run_full_load").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _targets("core.fullload.findings", node) == {"core.fullload"}  # reads its own package: counts
    node = ast.parse("from core.cdc import engine").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _targets("core.pipelines", node) == {"core.cdc", "core.cdc.engine"}


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_core() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles in core/:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_core_import_is_deferred_into_a_function() -> None:
    deferred = [d for m in MODULES for d in _imports(m)[1]]
    assert not deferred, "function-level imports of core modules (move them to the top):\n" + "\n".join(deferred)


def test_importing_core_pipelines_imports_nothing_that_imports_it_back() -> None:
    graph = _graph()
    back = sorted(m for m in _reaches(graph, "core.pipelines") if "core.pipelines" in _reaches(graph, m))
    assert not back, f"core.pipelines imports modules that import it back: {back}"
