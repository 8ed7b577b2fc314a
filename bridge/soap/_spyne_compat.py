"""Makes spyne 2.14 import on Python 3.12+: its vendored six is replaced by the maintained one.

Why: spyne 2.14 (its last release) ships `spyne/util/six.py`, an old six whose import hook for
`six.moves` only has `find_module`/`load_module`, which Python 3.12 no longer calls; every
`from spyne.util.six.moves import …` then fails. The maintained `six` (≥ 1.16) has the same
`moves` with a `find_spec` hook, and lacks only spyne's own addition `get_function_name`.
On 3.13 spyne also needs the removed `cgi` module, which the `legacy-cgi` distribution
provides (an install requirement with a python_version marker, nothing to do here).

What: before spyne is imported, `spyne.util.six` is a copy of `six` plus `get_function_name`,
and `spyne.util.six.moves…` resolve to `six.moves…`. On 3.11 the same alias is used, so every
interpreter runs the same code. Import this module before anything imports spyne
(bridge/soap/__init__.py does).

When it can go: when a spyne release newer than 2.14 (upstream master already dropped the
vendored six) is on PyPI and `install_requires` asks for it; then delete this module, its
import, and the `six` requirement.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import operator
import sys
import types

import six

ALIAS = "spyne.util.six"


def _alias_module() -> types.ModuleType:
    module = types.ModuleType(ALIAS, six.__doc__)
    module.__dict__.update({k: v for k, v in vars(six).items() if not k.startswith("__")})
    module.get_function_name = operator.attrgetter("__name__")  # spyne's addition to six
    module.__path__ = []  # a package, so `spyne.util.six.moves…` are looked up as submodules
    return module


class _Forward(types.ModuleType):
    """A module whose attributes are another module's. A proxy rather than the module itself,
    because the import system would overwrite the real module's `__spec__` (for
    `six.moves.collections_abc` that is the stdlib's `collections.abc`)."""

    def __init__(self, name: str, target: types.ModuleType) -> None:
        super().__init__(name)
        self.__target = target

    def __getattr__(self, name: str):
        return getattr(self.__target, name)


class _SixMovesFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`spyne.util.six.moves.X` → the maintained `six.moves.X`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(ALIAS + ".moves"):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Forward(spec.name, importlib.import_module("six" + spec.name[len(ALIAS):]))

    def exec_module(self, module):
        pass  # nothing to run: the six module it forwards to is initialised


def install() -> None:
    if ALIAS in sys.modules:
        return
    sys.modules[ALIAS] = _alias_module()
    sys.meta_path.insert(0, _SixMovesFinder())


install()
