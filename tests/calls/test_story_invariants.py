"""The call-story invariants (tests/calls/invariants.py) on every real capture and every simulator
scenario, fed through the real CallTracker."""

from __future__ import annotations

import pytest

from bridge.testing.scenarios import ORIGINATE_OUTCOMES, PROFILES, SCENARIOS
from tests.calls.invariants import as_story, check_story
from tests.calls.support import AMI, play, replay

# Calls whose story is known to be wrong, each pinned to the defect that explains it. These are
# strict xfails: when the model is fixed the test passes unexpectedly and the entry must go.
KNOWN_WRONG: dict[tuple[str, str], str] = {}


def _by_call(events) -> dict[str, list[dict[str, str]]]:
    calls: dict[str, list[dict[str, str]]] = {}
    for e in as_story(events):
        calls.setdefault(e["CallId"], []).append(e)
    return calls


def _capture_calls():
    params = []
    for path in sorted(AMI.glob("*/*.ami")):
        _, events = replay(path)
        for call_id, story in _by_call(events).items():
            why = KNOWN_WRONG.get((path.name, call_id))
            marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=why)] if why else []
            params.append(pytest.param(story, id=f"{path.name}:{call_id}", marks=marks))
    return params


CAPTURE_CALLS = _capture_calls()


def test_every_call_capture_gives_stories():
    # Guards the parametrization below against a fixtures move that would leave it empty.
    names = {p.id.split(":")[0] for p in CAPTURE_CALLS}
    assert {"calls-11.25.3.ami", "calls-22.10.1.ami", "queue-11.25.3.ami", "queue-22.10.1.ami",
            "blind-transfer-callerleg-22.10.1.ami"} <= names
    assert len(CAPTURE_CALLS) >= 20


@pytest.mark.parametrize("story", CAPTURE_CALLS)
def test_invariants_hold_when_a_real_capture_is_replayed(story):
    check_story(story)


SCENARIO_CASES = [(p, s, {}) for p in PROFILES for s in SCENARIOS if s != "originate"]
SCENARIO_CASES += [(p, "originate", {"outcome": o}) for p in PROFILES for o in ORIGINATE_OUTCOMES]
SCENARIO_CASES += [(p, "queue", {"answer_index": i}) for p in PROFILES for i in (0, 2)]
SCENARIO_CASES += [(p, "queue", {"members": ("901",), "answer_index": 0}) for p in PROFILES]


@pytest.mark.parametrize("profile,scenario,kw", SCENARIO_CASES,
                         ids=[f"{p}-{s}-{'-'.join(map(str, kw.values()))}" for p, s, kw in SCENARIO_CASES])
def test_invariants_hold_for_every_simulator_scenario(profile, scenario, kw):
    _, events = play(profile, scenario, **kw)
    calls = _by_call(events)
    assert len(calls) == 1, f"{scenario} should be one call, got {sorted(calls)}"
    check_story(next(iter(calls.values())))
