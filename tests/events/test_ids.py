"""Deterministic event ids (bridge.events.ids): same event, same id; different events, different ids."""

from __future__ import annotations

from bridge.events.ids import BUCKET_S, REPEAT_WINDOW_S, EventIds, derived_id

STATE = "Event: DeviceStateChange\r\nPrivilege: call,all\r\nDevice: Local/101@phones\r\nState: INUSE"
STAMPED = "Event: Hangup\r\nPrivilege: call,all\r\nTimestamp: 1796177486.123456\r\nUniqueid: 1796177486.0"


class Clocks:
    def __init__(self, wall: float = 1_000_000.0) -> None:
        self.wall, self.mono = wall, 50.0

    def advance(self, s: float) -> None:
        self.wall += s
        self.mono += s


def ids_with(clocks: Clocks) -> EventIds:
    return EventIds(wall_clock=lambda: clocks.wall, clock=lambda: clocks.mono)


def test_same_event_gets_the_same_id_on_two_nodes_when_both_saw_the_same_stream():
    a_clock, b_clock = Clocks(), Clocks()
    b_clock.mono = 9_000.0   # another process: monotonic clocks have nothing in common
    a, b = ids_with(a_clock), ids_with(b_clock)
    stream = [STAMPED, STATE, STATE, STAMPED.replace("123456", "123999")]
    assert [a.raw_id("pbx1", t) for t in stream] == [b.raw_id("pbx1", t) for t in stream]


def test_repeated_text_gets_a_new_id_for_each_occurrence_when_within_the_window():
    clocks = Clocks()
    ids = ids_with(clocks)
    first = ids.raw_id("pbx1", STATE)
    clocks.advance(1.0)
    second = ids.raw_id("pbx1", STATE)
    assert first != second


def test_repeated_text_never_reuses_an_id_when_it_comes_back_buckets_later():
    clocks = Clocks()
    ids = ids_with(clocks)
    seen = set()
    for _ in range(5):
        seen.add(ids.raw_id("pbx1", STATE))
        clocks.advance(BUCKET_S * 3)     # the counter forgot it; the bucket differs
    assert len(seen) == 5


def test_stamped_event_ignores_the_node_clock_when_timestampevents_is_on():
    a, b = Clocks(), Clocks(wall=1_000_000.0 + BUCKET_S * 7)
    assert ids_with(a).raw_id("pbx1", STAMPED) == ids_with(b).raw_id("pbx1", STAMPED)


def test_stamped_repeat_is_counted_when_identical_within_the_window():
    clocks = Clocks()
    ids = ids_with(clocks)
    first, again = ids.raw_id("pbx1", STAMPED), ids.raw_id("pbx1", STAMPED)
    clocks.advance(REPEAT_WINDOW_S + 1)
    assert first != again and ids.raw_id("pbx1", STAMPED) == first   # forgotten: Asterisk never repeats a µs


def test_server_name_is_part_of_the_id_when_two_pbxes_send_the_same_text():
    clocks = Clocks()
    assert ids_with(clocks).raw_id("pbx1", STAMPED) != ids_with(clocks).raw_id("pbx2", STAMPED)


def test_derived_ids_differ_by_name_and_rank_and_are_uuid_shaped():
    source = ids_with(Clocks()).raw_id("pbx1", STAMPED)
    derived = {derived_id(source, "CallEnded", 0), derived_id(source, "CallEnded", 1),
               derived_id(source, "CallRinging", 0)}
    assert len(derived) == 3
    for value in derived | {source}:
        parts = value.split("-")
        assert [len(p) for p in parts] == [8, 4, 4, 4, 12] and parts[2][0] == "8" and parts[3][0] in "89ab"
