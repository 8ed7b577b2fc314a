"""The import structure of bridge/: no product module depends on the test equipment (bridge.testing)."""

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
