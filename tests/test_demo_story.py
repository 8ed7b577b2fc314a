"""bridge/demo_story.py: the lines the demo prints for envelopes, written out by hand."""

from __future__ import annotations

import io
from datetime import datetime

from bridge.testing.demo_story import Click, StoryPrinter
from bridge.events.model import BridgeEvent
from bridge.erp.envelope import build_envelope


def envelope(name: str, kind: str = "normalized", event_uuid: str | None = None, **headers: str) -> bytes:
    pairs = (("Event", name), *headers.items())
    kw = {"event_uuid": event_uuid} if event_uuid else {}
    event = BridgeEvent(server="pbx1", name=name, kind=kind, headers=pairs, text="",
                        order_key=headers.get("CallId", "link:pbx1"), **kw)
    return build_envelope(event).encode("utf-8")


def printer() -> tuple[StoryPrinter, io.StringIO]:
    out = io.StringIO()
    return StoryPrinter(out, clock=lambda: datetime(2026, 12, 1, 10, 0, 7)), out


def test_queue_call_is_told_member_by_member_and_summed_up_once_when_it_ends():
    p, out = printer()
    call = dict(CallId="17.5", CallerIDNum="79161234567", CallerIDName="Иван Петров", CalleeNum="600")
    for ext in ("901", "902"):
        p.receipt(envelope("CallRinging", Extension=ext, CallState="ringing", **call))
    p.receipt(envelope("CallAnswered", Extension="902", CallState="answered", AnsweredBy="902", **call))
    p.receipt(envelope("CallEnded", Extension="901", CallState="answered", Reason="answered-elsewhere", **call))
    p.receipt(envelope("CallEnded", Extension="902", CallState="ended", Reason="answered", HangupBy="caller",
                       AnsweredBy="902", Billsec="42", Duration="50", **call))
    assert out.getvalue().splitlines() == [
        "10:00:07  CallRinging    901 is ringing — 79161234567 (Иван Петров) → 600  [call 17.5]",
        "10:00:07  CallRinging    902 is ringing — 79161234567 (Иван Петров) → 600  [call 17.5]",
        "10:00:07  CallAnswered   902 answered — 79161234567 (Иван Петров) → 600  [call 17.5]",
        "10:00:07  CallEnded      901 is out of the call (answered-elsewhere) — 79161234567 (Иван Петров) → 600"
        "  [call 17.5]",
        "10:00:07  CallEnded      902: call over (answered, the caller hung up) — 79161234567 (Иван Петров) → 600"
        "  [call 17.5]",
        "10:00:07  ── call ended  79161234567 (Иван Петров) → 600: answered, answered by 902, talk 42 s"
        " (50 s in all, 5 events)",
    ]
    assert (p.delivered, p.calls_ended, p.redeliveries) == (5, 1, 0)


def test_click_is_recognised_by_operator_ringing_first_when_call_id_is_not_the_originate_id():
    p, out = printer()
    p.click_placed(Click("202", "89161234567", "a1b2"))
    # Asterisk 11 ignores ChannelId: the call's id is a Uniqueid, and the caller ID is the number.
    call = dict(CallId="1700000000.9", CallerIDNum="89161234567", CalleeNum="202")
    p.receipt(envelope("CallRinging", Extension="202", CallState="ringing", **call))
    p.receipt(envelope("CallEnded", Extension="202", CallState="ended", Reason="no-answer", Billsec="0",
                       Duration="30", **call))
    assert out.getvalue().splitlines() == [
        "10:00:07  ClickToCall    operator 202 → 89161234567  (1C pressed it; originateId a1b2)",
        "10:00:07  CallRinging    202 is ringing — ClickToCall 202 → 89161234567  [call 1700000000.9]",
        "10:00:07  CallEnded      202: call over (no-answer) — ClickToCall 202 → 89161234567  [call 1700000000.9]",
        "10:00:07  ── call ended  ClickToCall 202 → 89161234567: no-answer, nobody answered, talk 0 s"
        " (30 s in all, 2 events)",
    ]


def test_redelivery_is_marked_and_not_counted_twice_when_the_same_id_arrives_again():
    p, out = printer()
    body = envelope("CallAnswered", event_uuid="6f0c1d2e-0000-4000-8000-000000000001", CallId="17.1",
                    Extension="902", CallerIDNum="202", CalleeNum="902", CallState="answered")
    p.receipt(body, answered="reset")
    p.receipt(body)
    assert out.getvalue().splitlines() == [
        "10:00:07  CallAnswered   902 answered — 202 → 902  [call 17.1]",
        "          ✗ the sink dropped its answer to this event on purpose: the bridge does not know it arrived"
        " and will send it again",
        "10:00:07  ↻ re-delivery  CallAnswered [call 17.1]: same id 6f0c1d2e…, the ERP already has it"
        " (keep PushEvent idempotent on id)",
    ]
    assert (p.delivered, p.redeliveries) == (1, 1)


def test_link_lines_say_what_the_erp_should_show_when_link_goes_and_comes_back():
    p, out = printer()
    p.receipt(envelope("LinkDown", kind="link", Server="pbx1", Reason="ping timeout: no answer to Ping",
                       Since="2026-12-01T10:00:00.000+00:00"))
    p.receipt(envelope("LinkUp", kind="link", Server="pbx1", AsteriskVersion="22.10.1", AMIVersion="11.0.0",
                       DownSince="2026-12-01T10:00:00.000+00:00", DownSeconds="7.0", LostCalls="1"))
    assert out.getvalue().splitlines() == [
        "10:00:07  LinkDown       pbx1 lost (ping timeout: no answer to Ping): telephony unavailable",
        "10:00:07  LinkUp         pbx1 back after 7.0 s: Asterisk 22.10.1, 1 call lost meanwhile",
    ]
