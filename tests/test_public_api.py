"""Each subpackage's __all__ is its public API: complete, resolvable, and nothing public left out."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import bridge

SUBPACKAGES = sorted(m.name for m in pkgutil.iter_modules(bridge.__path__, "bridge.") if m.ispkg)


def test_every_designed_subpackage_exists():
    assert {"bridge.ami", "bridge.calls", "bridge.events", "bridge.outbox", "bridge.soap"} <= set(SUBPACKAGES)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_all_is_declared_when_subpackage_is_imported(name):
    package = importlib.import_module(name)
    assert isinstance(getattr(package, "__all__", None), (list, tuple)), f"{name}/__init__.py has no __all__"
    assert len(set(package.__all__)) == len(package.__all__), f"{name}.__all__ has duplicates"


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_name_in_all_resolves_when_imported(name):
    package = importlib.import_module(name)
    missing = [n for n in getattr(package, "__all__", ()) if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_no_public_name_is_left_out_of_all(name):
    """httpx-style guard: a public class/function in the package namespace is in __all__ (or private)."""
    package = importlib.import_module(name)
    declared = set(getattr(package, "__all__", ()))
    public = {n for n, v in vars(package).items()
              if not n.startswith("_") and not isinstance(v, types.ModuleType)
              and getattr(v, "__module__", "").startswith(name)}
    assert public <= declared, f"{name}: public but not in __all__: {sorted(public - declared)}"


@pytest.mark.parametrize("module,names", [
    ("bridge.config", ["Config", "AmiConfig", "SubscriberConfig"]),
    ("bridge.config_load", ["load_config", "parse_config"]),
    ("bridge.cli", ["main"]),
    ("bridge.runtime", ["Runtime"]),
    ("bridge.observability", ["Metrics", "SoapMetricsMiddleware"]),
    ("bridge.health", ["HealthServer"]),
    ("bridge.logsetup", ["setup_logging", "RedactingFilter"]),
    ("bridge.testing.demo", ["run_demo"]),
])
def test_product_entry_points_exist(module, names):
    loaded = importlib.import_module(module)
    assert [n for n in names if not hasattr(loaded, n)] == []
