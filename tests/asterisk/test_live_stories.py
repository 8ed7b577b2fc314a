"""Each scenario of the matrix (scenarios.py) against the real Asterisk 22 and the real bridge:
the story the ERP received must be the one written by hand."""

from __future__ import annotations

import pytest

from tests.asterisk.scenarios import SCENARIOS
from tests.asterisk.stories import line, mismatches


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_erp_receives_the_true_story(sc, outcomes, live):
    out = outcomes[sc.name]
    got = out.events or []
    received = "\n".join("  " + line(e) for e in got) or "  (nothing)"
    context = f"\nreceived by the ERP (CallId {out.call_id}):\n{received}\n--- bridge log ---\n{live.bridge.log(40)}"
    if out.error is not None:
        pytest.fail(f"scenario failed: {out.error!r}{context}", pytrace=False)
    problems = mismatches(sc.expected, got, out.originate_id)
    assert not problems, "\n".join(problems) + context
