"""SOAP: the spyne service 1C calls (Originate, ClickToCall, status queries) and its HTTP server."""

from __future__ import annotations

import importlib

# Before any submodule imports spyne: spyne 2.14 on Python 3.12+ (see the module).
from bridge.soap import _spyne_compat  # noqa: F401

# Lazy, so importing one module of the package does not load spyne.
_EXPORTS = {
    "build_app": "bridge.soap.app",
    "SoapServer": "bridge.soap.server",
    "BridgeBackend": "bridge.soap.backend",
    "render_wsdl": "bridge.soap.wsdl",
    "hash_password": "bridge.soap.auth",
    "verify_password": "bridge.soap.auth",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bridge.soap' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
