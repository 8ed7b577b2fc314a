"""Test and demo equipment, not part of the bridge: a fake Asterisk (AMI simulator and its call
scenarios), a fake ERP (PushEvent receiver) and the waiting/recording helpers the tests share.

No product module imports this package (tests/test_layers.py checks it); only the `demo` command
loads it, lazily.
"""

from __future__ import annotations

import importlib

# Lazy, so `python -m bridge.testing.simulator` (or .fake_erp) does not find its own module
# already imported by the package (runpy warns about that).
_EXPORTS = {
    "AmiSimulator": "bridge.testing.simulator",
    "FloodJob": "bridge.testing.simulator",
    "FakeErp": "bridge.testing.fake_erp",
    "RecordingListener": "bridge.testing.helpers",
    "RecordingSink": "bridge.testing.helpers",
    "wait_until": "bridge.testing.helpers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bridge.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
