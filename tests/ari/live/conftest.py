"""The live ARI suite: one private Asterisk 22 per session (tests/ari/live/pbx.py)."""

from __future__ import annotations

import pytest

from tests.ari.live.pbx import Pbx, asterisk_dir


@pytest.fixture(scope="session")
def pbx():
    home = asterisk_dir()
    if home is None:
        pytest.skip("no shared Asterisk (../shared/asterisk or BRIDGE_ASTERISK_DIR)")
    instance = Pbx(home)
    try:
        yield instance.start()
    finally:
        instance.stop()
