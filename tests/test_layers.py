"""The import structure of bridge/: layers imported downward only, no cycle between files or packages,
no product module depending on the test equipment (bridge.testing), dialect branches in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import bridge

ROOT = Path(bridge.__file__).parent
# The one product entry that may load the fakes: `asterisk-bridge demo`, lazily inside its handler.
LAZY_TESTING_IMPORTS = {"bridge.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module top level?) for every import statement in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(f"{node.module}.{a.name}", id(node) in top) for a in node.names]
    return found


def product_files() -> list[Path]:
    return [p for p in sorted(ROOT.rglob("*.py")) if "testing" not in p.relative_to(ROOT).parts]


def test_no_product_module_imports_the_testing_package():
    offenders = []
    for path in product_files():
        name = module_name(path)
        for imported, top_level in imports_of(path):
            if imported == "bridge.testing" or imported.startswith("bridge.testing."):
                if name in LAZY_TESTING_IMPORTS and not top_level:
                    continue
                offenders.append(f"{name} imports {imported}")
    assert offenders == []


def test_the_fakes_live_only_in_the_testing_package():
    fakes = {"simulator", "sim_session", "sim_channels", "sim_flood", "scenarios", "scenario_shapes",
             "fake_erp", "demo", "sink"}
    misplaced = [module_name(p) for p in product_files() if p.stem in fakes]
    assert misplaced == []


def test_dialect_differences_live_only_in_the_database_layer():
    """SQLite vs PostgreSQL branches: outbox/queries.py (SQL), outbox/db.py (engines), migrations."""
    allowed = {"bridge.outbox.queries", "bridge.outbox.db"}
    offenders = [module_name(p) for p in product_files()
                 if "migrations" not in p.parts and module_name(p) not in allowed
                 and ("dialect.name" in p.read_text(encoding="utf-8")
                      or '.startswith("postgresql' in p.read_text(encoding="utf-8"))]
    assert offenders == []


# --- the import graph ---------------------------------------------------------------------------
# Layers, lowest first. A module may import its own unit and anything in a lower layer, never a
# higher one ("upward"); bridge.testing (test and demo equipment) sits on top of everything.
LAYERS = [
    {"bridge", "bridge.errors", "bridge.ns", "bridge.backoff", "bridge.xmltext", "bridge.controls"},
    {"bridge.config"},
    {"bridge.config_checks", "bridge.config_load", "bridge.logsetup", "bridge.httpserver", "bridge.httpgate"},
    {"bridge.ami"},
    {"bridge.ari"},
    {"bridge.events"},
    {"bridge.calls"},
    {"bridge.outbox", "bridge.erp"},
    {"bridge.ha"},
    {"bridge.soap", "bridge.health", "bridge.observability", "bridge.preflight"},
    {"bridge.runtime"},
    {"bridge.cli", "bridge.__main__"},
    {"bridge.testing"},
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
ALL_MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def unit_of(module: str) -> str:
    """The layer unit of a module: its subpackage (bridge.ami, …) or the top-level module itself."""
    parts = module.split(".")
    if len(parts) >= 2 and (ROOT / parts[1]).is_dir():
        return ".".join(parts[:2])
    return ".".join(parts[:2]) if len(parts) >= 2 else module


def _runtime_imports(path: Path) -> list[str]:
    """Modules `path` imports when it runs (lazy imports included; `if TYPE_CHECKING:` left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append(sub if sub in ALL_MODULES else node.module)
    return [m for m in found if m == "bridge" or m.startswith("bridge.")]


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in ALL_MODULES.items():
        graph[name] = {m if m in ALL_MODULES else unit_of(m) for m in _runtime_imports(path)} - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of `graph` as a path [a, b, …, a], or [] when it has none (iterative DFS)."""
    state: dict[str, int] = {}          # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph.get(start, ())))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return []


def test_the_cycle_finder_finds_a_cycle_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_cycle_between_files():
    assert find_cycle(import_graph()) == []


def test_no_import_cycle_between_packages():
    units: dict[str, set[str]] = {}
    for module, imported in import_graph().items():
        units.setdefault(unit_of(module), set()).update(unit_of(m) for m in imported)
    units = {u: deps - {u} for u, deps in units.items()}
    assert find_cycle(units) == []


def test_every_unit_has_a_layer():
    assert {unit_of(m) for m in ALL_MODULES} <= set(RANK)


# The `demo` command loads the fakes, lazily (test_no_product_module_imports_the_testing_package).
ALLOWED_UPWARD = {("bridge.cli", "bridge.testing.demo")}


def test_no_module_imports_upward():
    upward = [f"{module} → {target}" for module, imported in import_graph().items() for target in imported
              if RANK[unit_of(target)] > RANK[unit_of(module)] and (module, target) not in ALLOWED_UPWARD]
    assert upward == []
