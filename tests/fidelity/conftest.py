"""The simulator the fidelity tests compare with: asterisk20 profile, stamping events like
manager.conf `timestampevents = yes`, scenarios played at once (time_scale 0)."""

from __future__ import annotations

import pytest

from bridge.testing.simulator import AmiSimulator


@pytest.fixture(scope="module")
def sim():
    server = AmiSimulator("asterisk20", users={"bridge": "secret"}, time_scale=0.0,
                          timestamp_events=True).start()
    yield server
    server.stop()
