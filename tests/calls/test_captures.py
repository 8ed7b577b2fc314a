"""Real Asterisk 11.25.3 and 22.10.1 captures through the CallTracker, expected sequences written out."""

from __future__ import annotations

import pytest

from tests.calls.support import CAPTURE_11, CAPTURE_22, comparable, replay

# (event, Extension, CallerIDNum, CalleeNum, CallState, Reason, Cause, HangupBy, AnsweredBy)
CALLS = [
    # orig-200-cyrillic: Local/200 (CallerID "Тест <202>") dials Local/100, which answers.
    ("CallRinging", "100", "202", "100", "ringing", "-", "-", "-", "-"),
    ("CallAnswered", "100", "202", "100", "answered", "-", "-", "-", "100"),
    # orig-300-noanswer: the originated channel rings, nobody answers.
    ("CallRinging", "300", "300", "300", "ringing", "-", "-", "-", "-"),
    # orig-400-busy: Busy(3) before ringing; 11 says cause 0 where 22 says 17.
    ("CallEnded", "400", "400", "400", "ended", "busy", "17", "", ""),
    # orig-999-noexten: no such extension.
    ("CallEnded", "999", "999", "999", "ended", "failed", "0", "", ""),
    # orig-sync-100: Local/100 (CallerID 101) picks up and is sent to extension 100, whose
    # dialplan (Answer, Wait) handles the call itself: 100 rang for no time and answered.
    ("CallRinging", "100", "101", "100", "ringing", "-", "-", "-", "-"),
    ("CallAnswered", "100", "101", "100", "answered", "-", "-", "-", "100"),
    # orig-200-cyrillic ends.
    ("CallEnded", "100", "202", "100", "ended", "answered", "16", "caller", "100"),
    # orig-100-app: Local/100 (CallerID "App <100>") originated straight into Wait(1). Its far
    # half runs 100's dialplan: Answer, then Wait(2), which tells that 100 handles the call
    # (OriginateResponse, just before, named the application): 100 is the party called and
    # answered without ringing (it rang for no time). Wait(1), the originator's side, is done
    # first: the caller hung up; both halves say cause 0 (none given), reported as no cause.
    ("CallRinging", "100", "100", "100", "ringing", "-", "-", "-", "-"),
    ("CallAnswered", "100", "100", "100", "answered", "-", "-", "-", "100"),
    ("CallEnded", "100", "100", "100", "ended", "answered", "", "caller", "100"),
    # orig-sync-100 and orig-300-noanswer end.
    ("CallEnded", "100", "101", "100", "ended", "answered", "16", "caller", "100"),
    ("CallEnded", "300", "300", "300", "ended", "no-answer", "19", "", ""),
]

QUEUE = [
    # Local/700 (79161234567 "Иван Петров") → Local/600 → Queue(support), ringall; members
    # ring in the order 3, 1, 2; member 2 answers; 3 and 1 end with cause 26.
    ("CallRinging", "600", "79161234567", "600", "ringing", "-", "-", "-", "-"),
    ("CallRinging", "3", "79161234567", "600", "ringing", "-", "-", "-", "-"),
    ("CallRinging", "1", "79161234567", "600", "ringing", "-", "-", "-", "-"),
    ("CallRinging", "2", "79161234567", "600", "ringing", "-", "-", "-", "-"),
    ("CallAnswered", "2", "79161234567", "600", "answered", "-", "-", "-", "2"),
    ("CallEnded", "3", "79161234567", "600", "answered", "answered-elsewhere", "26", "", "2"),
    ("CallEnded", "1", "79161234567", "600", "answered", "answered-elsewhere", "26", "", "2"),
    ("CallEnded", "600", "79161234567", "600", "answered", "answered", "16", "", "2"),
    ("CallEnded", "2", "79161234567", "600", "ended", "answered", "16", "callee", "2"),
]

TRANSFER_22 = [
    # Local/810 ("Клиент" 79160000001) dials Local/800, answered; AMI Redirect moves the
    # caller's leg to extension 100 while bridged; 800 is left and hangs up. 800 answered the
    # call (100 is dialplan, no new party), and the caller's leg hung up last.
    ("CallRinging", "800", "79160000001", "800", "ringing", "-", "-", "-", "-"),
    ("CallAnswered", "800", "79160000001", "800", "answered", "-", "-", "-", "800"),
    ("CallTransferred", "800", "79160000001", "800", "answered", "-", "-", "-", "-"),
    ("CallEnded", "800", "79160000001", "800", "ended", "answered", "16", "caller", "800"),
]


def _summary(events):
    out = []
    for e in events:
        d = dict(e.headers)
        out.append((e.name, d["Extension"], d["CallerIDNum"], d["CalleeNum"], d["CallState"],
                    d.get("Reason", "-"), d.get("Cause", "-"), d.get("HangupBy", "-"),
                    d.get("AnsweredBy", "-")))
    return out


@pytest.mark.parametrize("path", [CAPTURE_11 / "calls-11.25.3.ami", CAPTURE_22 / "calls-22.10.1.ami"])
def test_originated_calls_give_expected_sequence_when_capture_is_replayed(path):
    tracker, events = replay(path)
    assert _summary(events) == CALLS
    assert tracker.active_calls() == []


@pytest.mark.parametrize("path", [CAPTURE_11 / "queue-11.25.3.ami", CAPTURE_22 / "queue-22.10.1.ami"])
def test_queue_gives_one_answered_call_when_capture_is_replayed(path):
    tracker, events = replay(path)
    assert _summary(events) == QUEUE
    assert len({e.get("CallId") for e in events}) == 1
    info = tracker.call(events[0].get("CallId"))
    assert info.queue == "support" and info.answered_by == "2" and info.reason == "answered"


def test_blind_transfer_is_reported_when_22_capture_redirects_the_caller_leg():
    _, events = replay(CAPTURE_22 / "blind-transfer-callerleg-22.10.1.ami")
    assert _summary(events) == TRANSFER_22
    moved = dict(events[2].headers)
    assert moved["TransferTarget"] == "100" and moved["TransfereeChannel"] == "Local/810@test-00000005;2"


@pytest.mark.parametrize("name", ["calls", "queue"])
def test_same_sequence_when_the_scenario_comes_from_11_or_22(name):
    _, old = replay(CAPTURE_11 / f"{name}-11.25.3.ami")
    _, new = replay(CAPTURE_22 / f"{name}-22.10.1.ami")
    assert [comparable(e) for e in old] == [comparable(e) for e in new]
    assert {e.get("CallerIDName") for e in new} <= {"Тест", "NoAnswer", "Busy", "", "App", "Sync",
                                                     "Иван Петров"}


@pytest.mark.parametrize("outcome,expected", [
    ("200-answered", CALLS[:2] + [CALLS[7]]),
    ("300-noanswer", [CALLS[2], CALLS[-1]]),
    ("400-busy", [CALLS[3]]),
])
def test_single_originate_capture_gives_its_calls_sequence_when_replayed(outcome, expected):
    _, events = replay(CAPTURE_11 / f"originate-{outcome}-11.25.3.ami")
    assert _summary(events) == expected
