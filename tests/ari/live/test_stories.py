"""Same calls, two transports, one run: AMI over TCP and ARI watch the same PBX and must tell the same stories."""

from __future__ import annotations

import pytest

from bridge.ami.actions import Action
from bridge.testing.helpers import wait_until
from tests.ari.live.stack import STORY_FIELDS, bridge_for

pytestmark = pytest.mark.asterisk

CALLER = "Иван Петров"
# Dialed from phone 401 (answers at once, stays 20 s) into [calls], which Dials Local/<n>@phones
# for 3 s and hangs up; 800 is Queue(sales): members 101 (answers, talks 1 s) and 201 (never
# answers). 1XX answer and hang up after 1 s, 2XX ring, 3XX are busy. See tests/ari/live/etc.
SCENARIOS = {"answered": "102", "noanswer": "202", "busy": "302", "queue": "800"}


def story(*events: dict) -> list[dict]:
    return list(events)


# Written from what the dialplan does, not from our output: who rang, who answered, why it ended.
EXPECTED = {
    "answered": story(
        {"event": "CallRinging", "Extension": "102", "CallState": "ringing"},
        {"event": "CallAnswered", "Extension": "102", "CallState": "answered", "AnsweredBy": "102"},
        {"event": "CallEnded", "Extension": "102", "CallState": "ended", "Reason": "answered", "AnsweredBy": "102",
         "HangupBy": "callee"}),
    "busy": story(
        {"event": "CallRinging", "Extension": "302", "CallState": "ringing"},
        {"event": "CallEnded", "Extension": "302", "CallState": "ended", "Reason": "busy", "Cause": "17"}),
    "noanswer": story(
        {"event": "CallRinging", "Extension": "202", "CallState": "ringing"},
        {"event": "CallEnded", "Extension": "202", "CallState": "ended", "Reason": "no-answer"}),
    "queue": story(
        {"event": "CallRinging", "Extension": "201", "Queue": "sales"},
        {"event": "CallRinging", "Extension": "101", "Queue": "sales"},
        {"event": "CallAnswered", "Extension": "101", "AnsweredBy": "101", "Queue": "sales"},
        {"event": "CallEnded", "Extension": "201", "Reason": "answered-elsewhere", "Queue": "sales"},
        {"event": "CallEnded", "Extension": "101", "CallState": "ended", "Reason": "answered", "AnsweredBy": "101",
         "Queue": "sales"}),
}


@pytest.fixture(scope="module")
def run(pbx):
    """Both bridges connected, then every scenario originated at once over AMI; both watch it all."""
    bridges = {t: bridge_for(pbx, t) for t in ("tcp", "ari")}
    try:
        for b in bridges.values():
            b.start()
        ami = bridges["tcp"].client
        call_ids = {}
        for name, exten in SCENARIOS.items():
            call_ids[name] = f"story-{name}"
            ami.send_action(Action.build(
                "Originate", Channel="Local/401@phones", Context="calls", Exten=exten, Priority=1,
                CallerID=f"{CALLER} <401>", ChannelId=call_ids[name], Async=True)).result(5)
        assert wait_until(lambda: all(b.call_ended(cid) for b in bridges.values() for cid in call_ids.values()),
                          timeout_s=20)
        yield bridges, call_ids
    finally:
        for b in bridges.values():
            b.client.stop()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_ari_tells_the_same_story_as_ami_when_both_watch_one_call(run, scenario):
    bridges, call_ids = run
    cid = call_ids[scenario]
    ami_story, ari_story = bridges["tcp"].stories()[cid], bridges["ari"].stories()[cid]
    assert ari_story == ami_story
    assert all(e[STORY_FIELDS.index("CallerIDName") + 1] == CALLER for e in ari_story)   # Cyrillic intact


@pytest.mark.parametrize("transport", ["tcp", "ari"])
@pytest.mark.parametrize("scenario", [
    "answered", "busy", "queue",
    "noanswer",
])
def test_story_matches_what_the_dialplan_did(run, transport, scenario):
    bridges, call_ids = run
    got = bridges[transport].stories()[call_ids[scenario]]
    assert len(got) == len(EXPECTED[scenario]), got
    for event, expected in zip(got, EXPECTED[scenario]):
        fields = dict(zip(("event",) + STORY_FIELDS, event))
        assert {k: fields[k] for k in expected} == expected
        assert (fields["CallerIDNum"], fields["CallerIDName"]) == ("401", CALLER)
