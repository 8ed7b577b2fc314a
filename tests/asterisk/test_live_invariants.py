"""The story invariants (tests/calls/invariants.py) on every live scenario's story, as the ERP sink
received it from the real bridge in front of the real Asterisk 22 (the session's `outcomes`: no
call is placed twice)."""

from __future__ import annotations

import pytest

from tests.asterisk.scenarios import SCENARIOS
from tests.calls.invariants import check_story


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_live_story_keeps_the_invariants(sc, outcomes):
    out = outcomes[sc.name]
    if isinstance(out.error, pytest.skip.Exception):
        pytest.skip(str(out.error))
    if out.error is not None and not out.events:
        pytest.fail(f"scenario failed before any story: {out.error!r}", pytrace=False)
    check_story(out.events or [])
