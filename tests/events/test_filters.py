"""Tests for bridge/events/filters.py: each condition alone, AND-combined, and config errors."""

from __future__ import annotations

import pytest

from bridge.ami.message import Message
from bridge.config import SubscriberConfig
from bridge.errors import ConfigError
from bridge.events.filters import SubscriberFilter
from bridge.events.model import NORMALIZED, BridgeEvent
from bridge.events.pipeline import raw_event

DIAL_18 = Message.from_pairs([   # the design.md example, Asterisk 1.8
    ("Event", "Dial"), ("Privilege", "call,all"), ("SubEvent", "Begin"), ("Channel", "SIP/202-0000019c"),
    ("Destination", "SIP/902-0000019d"), ("CallerIDNum", "202"), ("CallerIDName", "Operator-202"),
    ("ConnectedLineNum", "902"), ("ConnectedLineName", "Vasiliy-902"), ("UniqueID", "1335616897.790"),
    ("DestUniqueID", "1335616897.791"), ("Dialstring", "902")])
EVENT = raw_event("pbx1", DIAL_18)


def _filter(**kw) -> SubscriberFilter:
    return SubscriberFilter.compile(SubscriberConfig(name=kw.pop("name", "erp"), url="http://erp/ws",
                                                     mode=kw.pop("mode", "raw"), **kw))


def _normalized(**headers) -> BridgeEvent:
    pairs = [("Event", "CallRinging"), *headers.items()]
    return BridgeEvent("pbx1", "CallRinging", NORMALIZED, tuple(pairs),
                       "\r\n".join(f"{k}: {v}" for k, v in pairs), "c1")


def test_everything_passes_when_no_condition_is_set():
    assert _filter().matches(EVENT)


@pytest.mark.parametrize("pattern,passes", [
    ("Dial.{1,}?902", True),                    # design.md: a later header mentions 902
    ("Dial.{1,}?Begin.{1,}?902|Bridge.{1,}?902|Hangup.{1,}?902", True),
    ("Dial.{1,}?903", False),
    ("^Event: Dial\r\nPrivilege", True),        # the text is CRLF-joined as received
    ("Vasiliy-902", True), ("Vasiliy-903", False),   # plain strings are substrings
    ("dial.{1,}?902", False),                    # case-sensitive, like ROM-Asterisk
])
def test_regex_is_searched_with_dotall_in_the_event_text(pattern, passes):
    assert _filter(filter=pattern).matches(EVENT) is passes


def test_event_names_match_case_insensitively_when_listed():
    assert _filter(events=("dial", "Hangup")).matches(EVENT)
    assert not _filter(events=("DialBegin",)).matches(EVENT)
    assert not _filter(exclude_events=("DIAL",)).matches(EVENT)
    assert _filter(exclude_events=("Newexten", "VarSet")).matches(EVENT)


def test_headers_match_exactly_or_by_slash_regex():
    assert _filter(headers={"Dialstring": "902"}).matches(EVENT)
    assert _filter(headers={"dialstring": "902"}).matches(EVENT)      # header names ignore case
    assert not _filter(headers={"Dialstring": "90"}).matches(EVENT)   # exact is exact
    assert _filter(headers={"Destination": "/^SIP/9\\d\\d-/"}).matches(EVENT)
    assert not _filter(headers={"Destination": "/^PJSIP/"}).matches(EVENT)
    assert not _filter(headers={"Exten": "902"}).matches(EVENT)       # absent header fails


def test_conditions_are_and_combined():
    assert _filter(filter="902", events=("Dial",), headers={"CallerIDNum": "202"}).matches(EVENT)
    assert not _filter(filter="902", events=("Dial",), headers={"CallerIDNum": "203"}).matches(EVENT)
    assert not _filter(filter="903", events=("Dial",), headers={"CallerIDNum": "202"}).matches(EVENT)
    assert not _filter(filter="902", events=("Hangup",), headers={"CallerIDNum": "202"}).matches(EVENT)


@pytest.mark.parametrize("mode,raw,normalized", [("raw", True, False), ("normalized", False, True),
                                                 ("both", True, True)])
def test_mode_selects_raw_or_normalized_events(mode, raw, normalized):
    f = _filter(mode=mode)
    assert f.matches(EVENT) is raw
    assert f.matches(_normalized(Extension="902")) is normalized


def test_normalized_events_pass_the_same_filters():
    f = _filter(mode="normalized", headers={"Extension": "902"}, filter="CallRinging.{1,}?902")
    assert f.matches(_normalized(CallId="1.1", Extension="902"))
    assert not f.matches(_normalized(CallId="1.1", Extension="903"))


def test_config_error_names_subscriber_and_position_when_regex_is_invalid():
    with pytest.raises(ConfigError) as err:
        SubscriberFilter.compile(SubscriberConfig("crm", "http://x", filter="Dial.{1,}?(902"), index=1)
    assert "subscriber[1].filter" in str(err.value) and "'crm'" in str(err.value)
    assert "at 10" in str(err.value) and err.value.problems   # the unclosed "(" (0-based)


def test_config_error_when_header_regex_or_mode_is_invalid():
    with pytest.raises(ConfigError, match=r"subscriber\[0\]\.headers\.Exten: .* at 0"):
        _filter(headers={"Exten": "/*9/"})
    with pytest.raises(ConfigError, match=r"subscriber\[0\]\.mode"):
        _filter(mode="everything")
