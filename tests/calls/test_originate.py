"""bridge/calls/originate.py: OriginateTracker settles Originates from OriginateResponse by ActionID."""

from __future__ import annotations

from bridge.ami.message import Message
from bridge.calls.originate import FAILURE, PENDING, RESPONSE_GRACE_S, SUCCESS, OriginateTracker


def response(action_id: str, ok: bool, reason: str, uniqueid: str = "<null>") -> Message:
    return Message.from_pairs([("Event", "OriginateResponse"), ("Privilege", "call,all"), ("ActionID", action_id),
                               ("Response", "Success" if ok else "Failure"), ("Channel", "PJSIP/202"),
                               ("Reason", reason), ("Uniqueid", uniqueid)])


def test_tracker_reports_success_with_uniqueid_when_response_succeeds():
    tracker = OriginateTracker()
    tracker.register("id1", "pbx1", "PJSIP/202")
    assert tracker.get("id1").status == PENDING
    tracker.on_event("pbx1", response("id1", True, "4", "1700000000.5"))
    state = tracker.get("id1")
    assert (state.status, state.reason, state.reason_code, state.uniqueid) == (SUCCESS, "answered", 4, "1700000000.5")


def test_tracker_reports_reason_when_response_fails():
    tracker = OriginateTracker()
    tracker.register("id1", "pbx1", "PJSIP/202", uniqueid="chosen-id")
    tracker.on_event("pbx1", response("id1", False, "5"))
    state = tracker.get("id1")
    assert (state.status, state.reason, state.uniqueid) == (FAILURE, "busy", "chosen-id")


def test_tracker_ignores_response_when_it_comes_from_another_server_or_is_unknown():
    tracker = OriginateTracker()
    tracker.register("id1", "pbx1", "PJSIP/202")
    tracker.on_event("pbx2", response("id1", True, "4"))
    tracker.on_event("pbx1", response("other", True, "4"))
    assert tracker.get("id1").status == PENDING and tracker.get("other") is None


def test_tracker_fails_pending_originates_when_the_link_drops():
    tracker = OriginateTracker()
    tracker.register("id1", "pbx1", "PJSIP/202")
    tracker.register("id2", "pbx2", "PJSIP/203")
    tracker.on_disconnected("pbx1", "connection reset")
    assert tracker.get("id1").status == FAILURE and "connection reset" in tracker.get("id1").reason
    assert tracker.get("id2").status == PENDING


def test_tracker_keeps_the_first_outcome_when_a_second_response_arrives():
    tracker = OriginateTracker()
    tracker.register("id1", "pbx1", "PJSIP/202")
    tracker.on_event("pbx1", response("id1", True, "4"))
    tracker.on_event("pbx1", response("id1", False, "0"))
    assert tracker.get("id1").status == SUCCESS


def test_tracker_forgets_oldest_when_over_capacity():
    tracker = OriginateTracker(max_tracked=2)
    for name in ("a", "b", "c"):
        tracker.register(name, "pbx1", "PJSIP/1")
    assert tracker.get("a") is None and tracker.get("c") is not None


def test_tracker_fails_originate_when_no_response_arrives_before_the_deadline():
    clock = [1000.0]
    tracker = OriginateTracker(clock=lambda: clock[0])
    tracker.register("id1", "pbx1", "PJSIP/202", ring_timeout_s=20.0)
    clock[0] += 20.0 + RESPONSE_GRACE_S - 1
    assert tracker.get("id1").status == PENDING
    clock[0] += 2
    state = tracker.get("id1")
    assert state.status == FAILURE and "OriginateResponse" in state.reason
