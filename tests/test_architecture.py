"""docs/architecture.md stays true: every `bridge…` name it mentions imports."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
NAMES = sorted(set(re.findall(r"`(bridge(?:\.\w+)*)`", DOC.read_text(encoding="utf-8"))))


def resolve(dotted: str):
    """Import the longest module prefix of `dotted`, then walk the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_doc_names_enough_to_be_a_map():
    assert len(NAMES) > 40


@pytest.mark.parametrize("dotted", NAMES)
def test_every_name_in_the_architecture_doc_exists(dotted):
    assert resolve(dotted) is not None


def test_a_moved_name_would_fail():
    with pytest.raises((ModuleNotFoundError, AttributeError)):
        resolve("bridge.soap.transport.ErpTransport")
