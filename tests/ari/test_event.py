"""ARI JSON → flattened header pairs, and the filters that read them."""

from __future__ import annotations

import json

import pytest

from bridge.ari.event import AriEvent, channel_as_ami, flatten, parse, state_number
from bridge.config import SubscriberConfig
from bridge.errors import AmiProtocolError
from bridge.events.filters import SubscriberFilter
from bridge.events.pipeline import raw_event

DIAL = {"type": "Dial", "dialstatus": "ANSWER", "dialstring": "102",
        "caller": {"id": "c1", "name": "Local/101@phones-00000001;2", "state": "Up",
                   "caller": {"name": "Иван Петров", "number": "101"}},
        "peer": {"id": "p1", "name": "Local/102@phones-00000002;1", "state": "Ringing"},
        "args": ["a", True, None], "application": "asterisk-bridge"}


def test_event_headers_are_json_paths_in_order_when_nested():
    event = parse(json.dumps(DIAL, ensure_ascii=False).encode("utf-8"))
    assert event.event == "Dial"
    assert event.headers[:4] == (("Event", "Dial"), ("dialstatus", "ANSWER"), ("dialstring", "102"),
                                 ("caller.id", "c1"))
    assert event.get("caller.caller.name") == "Иван Петров"        # Cyrillic from UTF-8 bytes intact
    assert [event.get(f"args.{i}") for i in range(3)] == ["a", "true", ""]
    assert "\r\npeer.state: Ringing\r\n" in event.text
    assert event.data == DIAL


def test_subscriber_filters_match_flattened_headers_when_written_for_ari():
    event = raw_event("pbx", AriEvent.from_json(DIAL))
    by_header = SubscriberFilter.compile(SubscriberConfig("erp", "http://x/", mode="raw", events=("Dial",),
                                                  headers={"caller.caller.number": "/^10/"}))
    by_regex = SubscriberFilter.compile(SubscriberConfig("erp", "http://x/", mode="raw", filter="Dial.{1,}?ANSWER"))
    wrong = SubscriberFilter.compile(SubscriberConfig("erp", "http://x/", mode="raw", headers={"peer.id": "zz"}))
    assert by_header.matches(event) and by_regex.matches(event) and not wrong.matches(event)


@pytest.mark.parametrize("frame, reason", [(b"{not json", "not JSON"), (b"[1, 2]", "without an event"),
                                           (b'{"x": 1}', "without an event"), (b"\xff\xfe", "not JSON")])
def test_parse_refuses_frames_when_they_are_not_ari_events(frame, reason):
    with pytest.raises(AmiProtocolError, match=reason):
        parse(frame)


def test_flatten_refuses_garbage_when_nested_too_deep():
    deep: dict = {"type": "X"}
    node = deep
    for _ in range(20):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(AmiProtocolError, match="deeper"):
        list(flatten(deep))


def test_channel_snapshot_reads_like_core_show_channel_when_resyncing():
    msg = channel_as_ami({"id": "1.5", "name": "Local/101@phones-00000001;1", "state": "Ringing",
                          "caller": {"name": "Пётр", "number": "101"}, "connected": {"number": "102"},
                          "dialplan": {"context": "calls", "exten": "102"}})
    assert (msg.event, msg.get("Uniqueid"), msg.get("ChannelState"), msg.get("CallerIDName"),
            msg.get("Exten"), msg.get("Linkedid")) == ("CoreShowChannel", "1.5", "5", "Пётр", "102", "")


def test_snapshot_linkedid_comes_from_channelvars_when_ari_conf_adds_it():
    # ari.conf `channelvars = CHANNEL(linkedid)` (22.10.1, live): the variable's name is the key.
    channel = {"id": "1.7", "name": "Local/616@from-internal-00000002;1", "state": "Down",
               "channelvars": {"CHANNEL(linkedid)": "ax-1"}}
    assert channel_as_ami(channel).get("Linkedid") == "ax-1"
    event = AriEvent.from_json({"type": "ChannelCreated", "channel": channel})
    assert event.get("channel.channelvars.CHANNEL(linkedid)") == "ax-1"


def test_state_numbers_follow_ast_state2str_when_ari_spells_them():
    assert [state_number(s) for s in ("Down", "Ring", "Ringing", "Up", "Busy", "weird", None)] == [0, 4, 5, 6, 7, 0, 0]
