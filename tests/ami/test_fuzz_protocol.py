"""Fuzzing bridge/ami/protocol.py: arbitrary bytes, huge lines, invalid UTF-8, missing terminators, any chunking."""

from __future__ import annotations

import pytest

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bridge.ami.message import NEED_DATA, Banner, Message
from bridge.ami.protocol import AmiParser
from bridge.errors import BridgeError

pytestmark = pytest.mark.slow  # long hypothesis runs

# Bounded so the whole fuzz set (this file and tests/soap/test_fuzz_service.py) stays < 30 s.
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL_LIMIT = 512              # tiny max_line/max_message so random data hits the limits often

HEADER_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,20}", fullmatch=True).filter(lambda n: n.lower() != "response")
HEADER_VALUE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40)
MESSAGE = st.lists(st.tuples(HEADER_NAME, HEADER_VALUE), min_size=1, max_size=8)
# Pieces that steer random streams into the interesting states: terminators, Follows bodies, cp1251.
PIECES = st.one_of(st.binary(max_size=64), st.sampled_from([
    b"\r\n", b"\n", b"\r\n\r\n", b"\n\n", b"\r", b"Event: Dial\r\n", b"Response: Follows\r\n",
    b"--END COMMAND--\r\n\r\n", b"Asterisk Call Manager/11.0.0\r\n", "Иван".encode("cp1251"),
    "Иван".encode(), b"\xff\xfe\xc3", b"A" * 700, b"Key:\r\n", b": no name\r\n"]))
STREAM = st.lists(PIECES, max_size=40).map(b"".join)


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in zip(edges, edges[1:])]


def parse(chunks, **kw) -> tuple[list, AmiParser]:
    parser = AmiParser(**kw)
    out = []
    for chunk in chunks:
        parser.feed(chunk)
        while (msg := parser.next_message()) is not NEED_DATA:
            out.append(msg)
    return out, parser


def shape(items: list) -> list:
    return [("banner", m.text) if isinstance(m, Banner) else ("msg", m.headers, m.body) for m in items]


@FUZZ
@given(STREAM, st.lists(st.integers(min_value=0), max_size=20), st.booleans())
@example(b"\x00\r\n\r\n\r\r\n\r\n", [5], False)  # found by this test: a stray CR after a message end
# was a message when the buffer was whole (fast path) but blank when split (careful path)
@example(b"A" * 1918 + b"/\n", [1919], True)  # found by this test: an over-long first line was a
# banner when whole but not when split; now over max_line is never a banner
@example(b"Response: Follows\x00\x00" + b"A" * 700 + b"\x00\n\n" + b"\x00" * 16 + b"A" * 700, [516], False)
# found by this test: a Follows body over max_message without --END COMMAND-- was dropped up to
# its later empty line when split, but together with that line and what followed when whole
def test_same_messages_and_bounded_buffer_when_arbitrary_bytes_arrive_in_any_chunks(data, points, banner):
    limits = dict(max_line=SMALL_LIMIT, max_message=SMALL_LIMIT, expect_banner=banner)
    try:
        whole, p1 = parse([data], **limits)
        split, p2 = parse(cuts(data, points), **limits)
    except BridgeError:
        return  # a typed protocol error is an allowed answer to garbage; anything else fails the test
    assert shape(split) == shape(whole)
    assert p2.dropped == p1.dropped
    for item in whole:
        assert isinstance(item, (Banner, Message))
        for name, value in () if isinstance(item, Banner) else item.headers:
            assert isinstance(name, str) and isinstance(value, str)
    # Never buffers without bound: an unterminated frame over the limit is discarded.
    assert p1.buffered <= SMALL_LIMIT + 4 and p2.buffered <= SMALL_LIMIT + 4


@FUZZ
@given(st.lists(MESSAGE, min_size=1, max_size=6), st.lists(st.integers(min_value=0), max_size=30),
       st.sampled_from([b"\r\n", b"\n"]))
def test_every_header_round_trips_when_wellformed_messages_are_split_anywhere(messages, points, eol):
    data = b"Asterisk Call Manager/9.0.0" + eol
    for pairs in messages:
        data += b"".join(f"{k}: {v}".encode() + eol for k, v in pairs) + eol
    out, parser = parse(cuts(data, points))
    assert isinstance(out[0], Banner) and out[0].version == (9, 0, 0)
    assert [list(m.headers) for m in out[1:]] == [[(k, v) for k, v in pairs] for pairs in messages]
    assert parser.buffered == 0 and parser.dropped == 0


@FUZZ
@given(MESSAGE, MESSAGE, st.integers(min_value=SMALL_LIMIT + 1, max_value=20 * SMALL_LIMIT),
       st.sampled_from([b"A", b"\xff", "Ж".encode()]), st.lists(st.integers(min_value=0), max_size=10))
def test_link_survives_when_a_huge_line_sits_between_good_messages(before, after, size, filler, points):
    good = [b"".join(f"{k}: {v}\r\n".encode() for k, v in pairs) + b"\r\n" for pairs in (before, after)]
    huge = b"Event: Huge\r\nValue: " + filler * size + b"\r\n\r\n"
    out, parser = parse(cuts(good[0] + huge + good[1], points), max_line=SMALL_LIMIT,
                        max_message=SMALL_LIMIT * 40, expect_banner=False)
    assert [list(m.headers) for m in out] == [list(before), list(after)]
    assert parser.dropped == 1


@FUZZ
@given(st.binary(min_size=1, max_size=300).filter(lambda b: b"\n" not in b))
def test_nothing_emitted_and_nothing_lost_when_terminator_is_missing(line):
    out, parser = parse([b"Event: Partial\r\nValue: " + line], expect_banner=False)
    assert out == []
    out, _ = parse([b"Event: Partial\r\nValue: " + line, b"\r\n\r\n"], expect_banner=False)
    assert len(out) == 1 and out[0].event == "Partial"
    assert out[0].get("Value")  # invalid UTF-8 is decoded (cp1251 / \xNN), never dropped


@FUZZ
@given(st.integers(min_value=0, max_value=3), st.integers(min_value=1, max_value=4), st.sampled_from([b"\r\n", b"\n"]))
def test_message_at_the_size_limit_is_kept_when_its_terminator_arrives_split(short_by, from_end, eol):
    # Found by fuzz/fuzz_ami_parser.py: the unterminated-buffer check counted the terminator's
    # first bytes, so a message within 3 bytes of max_message was dropped or kept by chunking.
    head = b"Event: Edge" + eol + b"Value: "
    body = head + b"x" * (SMALL_LIMIT - short_by - len(head))
    data = body + eol + eol
    out, parser = parse([data[:-from_end], data[-from_end:]], max_line=SMALL_LIMIT, max_message=SMALL_LIMIT,
                        expect_banner=False)
    assert [m.event for m in out] == ["Edge"] and parser.dropped == 0
