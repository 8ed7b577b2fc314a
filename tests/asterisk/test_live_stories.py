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
    context = (f"\nreceived by the ERP (CallId {out.call_id}):\n{received}\n--- bridge log ---\n"
               f"{live.bridge.log(40)}\n--- asterisk log ---\n{live.pbx.log_tail(20)}\n"
               f"--- AMI events of the call ---\n{live.raw_lines(out.call_id)}")
    if isinstance(out.error, pytest.skip.Exception):
        pytest.skip(str(out.error))
    if out.error is not None:
        pytest.fail(f"scenario failed: {out.error!r}{context}", pytrace=False)
    problems = mismatches(sc.story_over(live.bridge.transport), got, out.originate_id)
    assert not problems, "\n".join(problems) + context


def test_readme_matrix_lists_exactly_the_live_scenarios():
    # The documented matrix is the contract: it names the same scenarios this suite plays
    # (docs/calls.md, moved there from the README with the other internals).
    from pathlib import Path
    import re

    readme = (Path(__file__).resolve().parents[2] / "docs" / "calls.md").read_text(encoding="utf-8")
    section = readme.split("### Live call stories", 1)[1].split("<!-- /section:calls -->", 1)[0]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.M)
    assert sorted(listed) == sorted(s.name for s in SCENARIOS)
    assert len(listed) >= 20
