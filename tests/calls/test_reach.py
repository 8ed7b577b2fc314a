"""bridge/calls/reach.py: subscribers that can never match are refused, unlikely ones warned about."""

from __future__ import annotations

import tomllib

import pytest

from bridge.calls.model import NORMALIZED_HEADERS
from bridge.config import SubscriberConfig
from bridge.config_load import parse_config
from bridge.errors import ConfigError
from bridge.calls.reach import analyse, raw_only

ROM_FILTER = 'Dial.{1,}?Begin.{1,}?902|Bridge.{1,}?902|Hangup.{1,}?902'


def sub(**kw) -> SubscriberConfig:
    return SubscriberConfig(name="erp", url="http://erp.example/ws", **kw)


def config_text(subscriber: str) -> str:
    return f"""
[database]
url = "sqlite:////tmp/x.db"
[[ami]]
name = "pbx1"
username = "bridge"
[[subscriber]]
name = "erp"
url = "http://erp.example/ws"
{subscriber}
"""


def test_config_refuses_normalized_subscriber_with_raw_event_names_as_the_old_example_had():
    # bridge.example.toml's subscriber until b11fe0f: nothing could ever match.
    with pytest.raises(ConfigError) as err:
        parse_config(tomllib.loads(config_text(f"""mode = "normalized"
filter = '{ROM_FILTER}'
events = ["DialBegin", "Hangup"]
exclude_events = ["Newexten", "VarSet"]""")), env={}, check_subscriber=analyse)
    assert err.value.problems == [
        "subscriber[0].events: 'DialBegin', 'Hangup' are raw AMI events; mode \"normalized\" only "
        "receives CallRinging, CallAnswered, CallEnded, CallTransferred, LinkDown, LinkUp "
        "(use mode \"raw\" or \"both\" for AMI events)"]


def test_normalized_filter_of_raw_words_only_is_refused_naming_what_each_part_needs():
    found = analyse(sub(filter="Dial.{1,}?Begin.{1,}?902|Bridge.{1,}?902"), "subscriber[0]")
    assert len(found.errors) == 1 and found.warnings == []
    assert found.errors[0].startswith("subscriber[0].filter: can never match a normalized event "
                                      "('Dial.{1,}?Begin.{1,}?902' needs 'Begin', 'Dial'; "
                                      "'Bridge.{1,}?902' needs 'Bridge'")


def test_rom_filter_in_normalized_mode_is_only_warned_because_hangupby_contains_hangup():
    # "Hangup.{1,}?902" matches "HangupBy: callee\r\nAnsweredBy: 902" of a CallEnded.
    found = analyse(sub(filter=ROM_FILTER), "subscriber[0]")
    assert found.errors == []
    assert found.warnings == ["subscriber[0].filter: parts that never match a normalized event: "
                              "'Dial.{1,}?Begin.{1,}?902' needs 'Begin', 'Dial'; 'Bridge.{1,}?902' needs 'Bridge'"]


def test_rom_filter_in_raw_mode_is_fine():
    found = analyse(sub(mode="raw", filter=ROM_FILTER, exclude_events=("Newexten",)), "subscriber[0]")
    assert found.errors == [] and found.warnings == []


@pytest.mark.parametrize("kw,expected", [
    (dict(events=("CallRinging", "DialBegin")), "subscriber[0].events: 'DialBegin' is a raw AMI event"),
    (dict(mode="raw", events=("Hangup", "CallEnded")), "subscriber[0].events: 'CallEnded' never match"),
])
def test_mixed_event_names_are_a_warning_naming_the_ones_that_never_match(kw, expected):
    found = analyse(sub(**kw), "subscriber[0]")
    assert found.errors == [] and len(found.warnings) == 1 and found.warnings[0].startswith(expected)


@pytest.mark.parametrize("kw,expected", [
    (dict(mode="raw", events=("CallRinging",)), "subscriber[0].events: 'CallRinging' is a normalized event"),
    (dict(mode="both", events=("DialBegin", "CallEnded"), exclude_events=("dialbegin", "CALLENDED")),
     "subscriber[0].exclude_events: excludes every name in events"),
    (dict(headers={"Exten": "902"}), "subscriber[0].headers.Exten: no normalized event carries this header"),
    (dict(events=("CallRinging",), headers={"Reason": "busy"}),
     "subscriber[0].headers.Reason: none of the events in events carries this header"),
    (dict(headers={"Direction": "incoming"}),
     "subscriber[0].headers.Direction: 'incoming' is never a value of Direction (one of inbound, outbound, internal)"),
])
def test_subscriber_that_can_never_match_is_an_error_naming_the_key(kw, expected):
    found = analyse(sub(**kw), "subscriber[0]")
    assert len(found.errors) == 1 and found.errors[0].startswith(expected), found


@pytest.mark.parametrize("kw", [
    dict(), dict(headers={"Extension": "902"}), dict(events=("CallEnded",), headers={"Reason": "busy"}),
    dict(headers={"direction": "/bound/"}), dict(filter="CallRinging.{1,}?Extension: 902"),
    dict(mode="both", events=("DialBegin", "CallRinging"), headers={"Exten": "902"}),
    dict(mode="raw", headers={"Exten": "902"}),
])
def test_subscribers_that_can_match_pass(kw):
    found = analyse(sub(**kw), "subscriber[0]")
    assert found.errors == [] and found.warnings == []


def test_raw_only_literals_are_words_of_raw_ami_text_absent_from_normalized_text():
    assert raw_only("Dial") and raw_only("Begin") and raw_only("Event: DialBegin")
    assert not raw_only("Hangup")        # HangupBy
    assert not raw_only("902") and not raw_only("Extension: 902") and not raw_only("Иванов")


def test_normalized_header_table_lists_every_header_the_tracker_emits():
    from tests.calls.support import play

    seen: dict[str, set[str]] = {}
    for profile in ("asterisk11", "asterisk20"):
        for scenario in ("answered", "noanswer", "busy", "caller-hangup-ringing", "queue", "blind-transfer"):
            for event in play(profile, scenario)[1]:
                seen.setdefault(event.name, set()).update(k for k, _ in event.headers)
    assert set(seen) == set(NORMALIZED_HEADERS)
    for name, headers in seen.items():
        assert headers <= set(NORMALIZED_HEADERS[name]), (name, headers - set(NORMALIZED_HEADERS[name]))


@pytest.mark.parametrize("kw", [
    dict(events=("CallEnded", "LinkDown", "LinkUp")),
    dict(mode="raw", events=("Hangup", "LinkDown", "LinkUp")),
    dict(events=("LinkDown",), headers={"Server": "pbx1"}),
    dict(headers={"Reason": "bridge stopped"}),            # LinkDown's free-text Reason
])
def test_link_events_are_names_and_headers_a_subscriber_can_match(kw):
    found = analyse(sub(**kw), "subscriber[0]")
    assert found.errors == [] and found.warnings == []


def test_a_header_only_call_events_carry_cannot_match_when_only_link_events_are_wanted():
    found = analyse(sub(events=("LinkDown", "LinkUp"), headers={"Extension": "902"}), "subscriber[0]")
    assert found.errors and found.errors[0].startswith(
        "subscriber[0].headers.Extension: none of the events in events carries this header")
