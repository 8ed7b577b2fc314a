"""One scenario played now on the shared Asterisk 22.10.1 and on the simulator: same story.

The recorded captures (test_fidelity.py) pin what Asterisk said once; this proves the recording
is still what the server says, with the same dialplan, on this machine. Skipped, saying so,
when the shared Asterisk is not beside the checkout (BRIDGE_ASTERISK_DIR overrides).
"""

from __future__ import annotations

import pytest

from bridge.ami.message import Message
from bridge.ami.protocol import AmiParser
from tests.calls.invariants import check_story
from tests.fidelity.live import Asterisk, asterisk_dir
from tests.fidelity.record import record
from tests.fidelity.stories import assert_same_story, feed, sim_story

HOME = asterisk_dir()
pytestmark = pytest.mark.asterisk   # a live Asterisk: left out of `make test-fast`


@pytest.fixture(scope="module")
def pbx():
    if HOME is None:
        pytest.skip("no shared Asterisk 22.10.1 beside the checkout (set BRIDGE_ASTERISK_DIR)")
    server = Asterisk(HOME)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_answered_call_tells_the_same_story_live_and_on_the_simulator(pbx, sim):
    received, _ = record(pbx.ami_port, "answered")
    parser = AmiParser()
    parser.feed(received)
    real = feed([m for m in parser if isinstance(m, Message) and m.is_event])
    check_story(real)
    assert [e["Event"] + " " + e["Extension"] for e in real] == [
        "CallRinging 902", "CallAnswered 902", "CallEnded 902"]
    assert_same_story(sim_story(sim, "answered", None), real)
