"""AJAM bodies recorded from a real Asterisk 22 parse to the same messages as the TCP captures."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from bridge.ami import ajam_wire
from bridge.ami.actions import Action
from bridge.ami.message import Message
from bridge.calls import CallTracker
from bridge.config import CallsConfig
from bridge.errors import AmiEncodeError
from tests.calls.support import COMPARED, StepClock, capture_messages

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AJAM = FIXTURES / "ajam" / "asterisk-22.10.1"
TCP = FIXTURES / "ami" / "asterisk-22.10.1"


def http_body(name: str) -> bytes:
    """The body of a recorded HTTP response (headers end at the first empty line)."""
    head, sep, body = (AJAM / name).read_bytes().partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 200 OK")
    return body


def tcp_messages(name: str) -> list[Message]:
    from bridge.ami.protocol import AmiParser

    parser = AmiParser()
    parser.feed((TCP / name).read_bytes())
    return [m for m in parser if isinstance(m, Message)]


def without(message: Message, *keys: str) -> tuple:
    return tuple((k, v) for k, v in message.headers if k not in keys)


def test_ping_answer_is_the_tcp_ping_answer_when_read_over_http():
    (http,) = ajam_wire.parse_body(http_body("ajam-rawman-ping-22.10.1.http"))
    (tcp,) = tcp_messages("ping-22.10.1.ami")
    assert http.headers[0] == ("Response", "Success") and http.get("Ping") == "Pong"
    assert [k for k, _ in http.headers] == [k for k, _ in tcp.headers if k != "ActionID"]
    assert without(http, "Timestamp") == without(tcp, "Timestamp", "ActionID")


def test_failed_login_is_the_tcp_failed_login_when_read_over_http():
    (http,) = ajam_wire.parse_body(http_body("ajam-rawman-login-failed-22.10.1.http"))
    tcp = [m for m in tcp_messages("login-failed-22.10.1.ami") if m.is_response]
    assert http.headers == (("Response", "Error"), ("Message", "Authentication failed"))
    assert without(tcp[-1], "ActionID") == http.headers


def test_permission_denied_marks_a_lost_session_when_pinging_after_logoff():
    (http,) = ajam_wire.parse_body(http_body("ajam-rawman-ping-after-logoff-22.10.1.http"))
    tcp = tcp_messages("not-logged-in-22.10.1.ami")
    assert ajam_wire.session_lost(http)
    assert all(without(m, "ActionID") == http.headers for m in tcp)  # TCP says the same before login
    (ok,) = ajam_wire.parse_body(http_body("ajam-rawman-ping-22.10.1.http"))
    assert not ajam_wire.session_lost(ok)


def test_login_and_logoff_answers_match_tcp_when_read_over_http():
    (login,) = ajam_wire.parse_body(http_body("ajam-rawman-login-22.10.1.http"))
    (logoff,) = ajam_wire.parse_body(http_body("ajam-rawman-logoff-22.10.1.http"))
    tcp = tcp_messages("calls-22.10.1.ami")
    tcp_goodbye = [m for m in tcp if m.response == "Goodbye"]
    assert login.headers == (("Response", "Success"), ("Message", "Authentication accepted"))
    assert any(without(m, "ActionID") == login.headers for m in tcp if m.is_response)
    assert len(tcp_goodbye) == 1 and without(tcp_goodbye[0], "ActionID") == logoff.headers


def test_waitevent_yields_events_without_its_terminator_when_events_were_queued():
    result = ajam_wire.wait_event_result(http_body("ajam-rawman-waitevent-22.10.1.http"))
    assert result.complete and result.response.get("Message") == "Waiting for Event completed."
    assert [e.event for e in result.events] == ["SuccessfulAuth"]
    assert result.events[0].get("AccountID") == "bridge" and result.events[0].get("UsingPassword") == "0"


def test_waitevent_yields_nothing_when_it_timed_out_idle():
    result = ajam_wire.wait_event_result(http_body("ajam-rawman-waitevent-idle-22.10.1.http"))
    assert result.complete and result.events == ()


def test_abandoned_waitevent_is_incomplete_when_the_body_is_empty():
    result = ajam_wire.wait_event_result(b"")
    assert not result.complete and result.events == ()


def story(events) -> list[tuple]:
    tracker = CallTracker(CallsConfig(), clock=StepClock())
    out = []
    for event in events:
        out.extend(tracker.feed("pbx1", event))
    return [(e.name,) + tuple(dict(e.headers).get(k, "-") for k in COMPARED) for e in out]


def test_answered_call_tells_the_tcp_story_when_its_events_come_through_waitevent():
    # The same Originate (Local/200@test → Dial(Local/100@test), CallerID "Тест <202>") recorded
    # once over AJAM (two WaitEvent answers) and once over TCP (the first call of calls-22.10.1).
    events = []
    for name in ("ajam-rawman-waitevent-call-22.10.1.http", "ajam-rawman-waitevent-call2-22.10.1.http"):
        events += ajam_wire.wait_event_result(http_body(name)).events
    tcp = [m for m in capture_messages(TCP / "calls-22.10.1.ami") if m.get("Linkedid") in (None, "1795666879.0")]
    http_story, tcp_story = story(events), story(tcp)
    assert [s[0] for s in http_story] == ["CallRinging", "CallAnswered", "CallEnded"]
    ended = dict(zip(("name",) + COMPARED, http_story[-1]))
    assert (ended["Extension"], ended["CallerIDNum"], ended["CallerIDName"]) == ("100", "202", "Тест")
    assert (ended["Reason"], ended["AnsweredBy"], ended["Cause"]) == ("answered", "100", "16")
    assert http_story == tcp_story[:3]


def test_list_action_body_gives_response_events_and_complete_when_parsed():
    (tcp_response, *tcp_events) = tcp_messages("coreshowchannels-22.10.1.ami")
    body = (TCP / "coreshowchannels-22.10.1.ami").read_bytes()  # an HTTP list body is this, byte for byte
    result = ajam_wire.action_result(body)
    assert result.response == tcp_response
    assert list(result.events) + [result.complete] == tcp_events
    assert [e.event for e in result.events] == ["CoreShowChannel", "CoreShowChannel"]


def test_form_fields_keep_repeated_headers_and_url_encode_every_value_when_posted():
    action = Action.build("Originate", action_id="a&b=1", Channel="Local/101@phones",
                          Variable=["A=1", "B=x&y=z"], CallerID="Тест <202>")
    fields = ajam_wire.form_fields(action)
    assert fields[:2] == [("Action", "Originate"), ("ActionID", "a&b=1")]
    assert [v for k, v in fields if k == "Variable"] == ["A=1", "B=x&y=z"]
    body = requests.Request("POST", "http://pbx/asterisk/rawman", data=fields).prepare().body
    assert body == ("Action=Originate&ActionID=a%26b%3D1&Channel=Local%2F101%40phones&Variable=A%3D1"
                    "&Variable=B%3Dx%26y%3Dz&CallerID=%D0%A2%D0%B5%D1%81%D1%82+%3C202%3E")


@pytest.mark.parametrize("value", ["x\r\nAction: Hangup", "x\nChannel: all", "x\r"])
def test_action_is_refused_before_any_form_exists_when_a_value_carries_cr_or_lf(value):
    with pytest.raises(AmiEncodeError):
        ajam_wire.form_fields(Action.build("Originate", Channel=value))
