"""The sans-I/O AMI parser and action encoder (bridge/ami/protocol.py)."""

from __future__ import annotations

import collections

import pytest

from bridge.ami.actions import Action
from bridge.ami.message import NEED_DATA, Banner, Message
from bridge.ami.protocol import AmiParser
from bridge.errors import AmiEncodeError
from tests.conftest import AMI_FIXTURES

def parse_all(data: bytes, chunk: int | None = None) -> list:
    parser = AmiParser()
    out = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        parser.feed(data[i : i + step])
        out.extend(parser)
    return out


def test_cp1251_and_utf8_values_survive_in_one_stream_when_mixed():
    out = parse_all((AMI_FIXTURES / "asterisk-22.10.1/cp1251-callerid-amiheader-22.10.1.ami").read_bytes())
    names = {m.get("CallerIDName") for m in out if isinstance(m, Message)}
    assert "Василий" in names


def test_encode_refuses_crlf_when_value_carries_a_second_action():
    with pytest.raises(AmiEncodeError):
        Action.build("Originate", Channel="PJSIP/100\r\n\r\nAction: Command\r\nCommand: core stop now")


def test_need_data_when_message_incomplete():
    parser = AmiParser(expect_banner=False)
    parser.feed(b"Event: Hangup\r\nChannel: SIP/1")
    assert parser.next_message() is NEED_DATA


def test_follows_body_kept_when_asterisk11_command_output():
    out = parse_all((AMI_FIXTURES / "asterisk-11.25.3/command-queue-show-support-after-11.25.3.ami").read_bytes())
    (msg,) = out
    assert msg.response == "Follows"
    assert msg.output[1] == "   Members: "
    assert msg.action_id == "q-queue-show-after"


def test_repeated_headers_all_kept_when_encoded_and_parsed():
    action = Action.build("Originate", "a-1", Channel="PJSIP/100", Variable=["A=1", "B=привет"])
    parser = AmiParser(expect_banner=False)
    parser.feed(action.encode())
    msg = parser.next_message()
    assert msg.get_all("Variable") == ["A=1", "B=привет"]
    assert collections.Counter(k for k, _ in msg.headers)["Variable"] == 2


# --- added by the "ami" helper: chunking at every split point, properties, limits ------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bridge.errors import AmiEncodeError as _EncodeError  # noqa: E402


def _shape(out: list) -> list:
    return [("Message" if isinstance(m, Message) else type(m).__name__, getattr(m, "headers", None),
             getattr(m, "text", None), getattr(m, "body", None)) for m in out]


def _parse_pieces(data: bytes, cuts: list[int], **kw) -> list:
    parser = AmiParser(**kw)
    out, start = [], 0
    for cut in cuts + [len(data)]:
        parser.feed(data[start:cut])
        out.extend(parser)
        start = cut
    return out


@pytest.mark.slow  # every capture split at every byte
@pytest.mark.parametrize("name", ["asterisk-22.10.1/cp1251-callerid-amiheader-22.10.1.ami",
                                  "asterisk-11.25.3/command-queue-show-support-after-11.25.3.ami",
                                  "asterisk-22.10.1/login-md5-ok-22.10.1.ami"])
def test_same_messages_when_capture_split_at_every_byte_offset(name):
    data = (AMI_FIXTURES / name).read_bytes()
    whole = _shape(parse_all(data))
    assert whole
    for cut in range(1, len(data)):
        assert _shape(_parse_pieces(data, [cut])) == whole, f"split at byte {cut}"


def test_same_messages_when_capture_fed_one_byte_at_a_time():
    data = (AMI_FIXTURES / "asterisk-11.25.3/calls-11.25.3.ami").read_bytes()
    assert _shape(parse_all(data, chunk=1)) == _shape(parse_all(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8), st.booleans())
def test_parser_never_raises_when_fed_arbitrary_bytes(data, cuts, banner):
    out = _parse_pieces(data, sorted(c for c in cuts if c <= len(data)), max_line=64, max_message=256,
                        expect_banner=banner)
    assert all(isinstance(msg, (Banner, Message)) for msg in out)
    assert sum(isinstance(msg, Banner) for msg in out) <= (1 if banner else 0)
    for msg in out[1 if out and isinstance(out[0], Banner) else 0:]:
        assert isinstance(msg, Message)              # a banner only ever comes first
        # Every accessor answers with the declared types, and no header crosses a line.
        assert all(isinstance(k, str) and isinstance(v, str) and "\n" not in k + v for k, v in msg.headers)
        assert msg.event is None or msg.event == msg.get("Event")
        assert msg.action_id is None or msg.action_id == msg.get("ActionID")
        assert isinstance(msg.is_response, bool) and all(isinstance(line, str) for line in msg.output)


_KEY = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,15}", fullmatch=True).filter(
    lambda k: k.lower() not in ("action", "actionid"))
_VALUE = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=40)


@pytest.mark.slow  # a long hypothesis run
@settings(max_examples=200, deadline=None)
@given(_KEY, st.lists(st.tuples(_KEY, _VALUE), max_size=12), st.none() | st.text("abc-123", min_size=1))
def test_encode_then_parse_round_trips_when_action_valid(name, headers, action_id):
    action = Action(name, tuple(headers), action_id)
    parser = AmiParser(expect_banner=False)
    parser.feed(action.encode())
    (msg,) = list(parser)
    expected = [("Action", name)] + ([("ActionID", action_id)] if action_id is not None else []) + headers
    assert list(msg.headers) == expected


@pytest.mark.slow  # a long hypothesis run
@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.tuples(_KEY, _VALUE),
                         min_size=1, max_size=6), min_size=1, max_size=8),
       st.lists(st.integers(0, 2000), max_size=6), st.booleans())
def test_fast_and_careful_paths_agree_when_stream_is_crlf(frames, cuts, cp1251):
    # The same messages framed by the bulk fast path (whole feed) and, one at a time, by the
    # careful path (a stray empty line in front of every message disables the fast path).
    def encode(value: str) -> bytes:
        try:
            return value.encode("cp1251") if cp1251 else value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8")

    bodies = [b"\r\n".join(k.encode() + b": " + encode(v) for k, v in pairs) for pairs in frames]
    fast = b"".join(body + b"\r\n\r\n" for body in bodies)
    careful = b"".join(b"\r\n" + body + b"\r\n\r\n" for body in bodies)
    out_fast = _parse_pieces(fast, sorted(c for c in cuts if c <= len(fast)), expect_banner=False)
    out_careful = _parse_pieces(careful, [], expect_banner=False)
    assert _shape(out_fast) == _shape(out_careful)
    assert len(out_fast) == len(frames)
    if not cp1251:  # cp1251 bytes can happen to be valid UTF-8, so only UTF-8 must come back verbatim
        assert [list(m.headers) for m in out_fast] == frames


@pytest.mark.parametrize("stray", [b"", b"\r\n"])
def test_overlong_line_dropped_and_counted_when_next_message_parses(stray):
    parser = AmiParser(max_line=100, max_message=10_000, expect_banner=False)
    parser.feed(stray + b"Event: Big\r\nData: " + b"x" * 500 + b"\r\n\r\n" + b"Event: Small\r\nA: 1\r\n\r\n")
    out = list(parser)
    assert [m.event for m in out] == ["Small"] and parser.dropped == 1


@pytest.mark.parametrize("chunk", [64, 4096])
def test_oversize_message_dropped_and_counted_when_next_message_parses(chunk):
    parser = AmiParser(max_line=100, max_message=1000, expect_banner=False)
    data = b"Event: Huge\r\n" + b"".join(b"Line%d: %s\r\n" % (i, b"y" * 50) for i in range(100)) + b"\r\n"
    data += "Event: Next\r\nCallerIDName: Оператор\r\n\r\n".encode()
    out = []
    for i in range(0, len(data), chunk):
        parser.feed(data[i:i + chunk])
        out.extend(parser)
        assert parser.buffered <= 1000 + chunk + 4  # bounded while discarding
    assert [(m.event, m.get("CallerIDName")) for m in out] == [("Next", "Оператор")]
    assert parser.dropped == 1


def test_parsed_message_equals_built_message_when_same_headers():
    parser = AmiParser(expect_banner=False)
    parser.feed("Event: Newchannel\r\nCallerIDName: Тест\r\nNoColonLine\r\n\r\n".encode())
    (msg,) = list(parser)
    built = Message((("Event", "Newchannel"), ("CallerIDName", "Тест"), ("NoColonLine", "")), msg.text)
    assert msg == built and hash(msg) == hash(built)
    assert msg.event == "Newchannel" and msg.is_event and not msg.is_response


def test_banner_with_absurd_digit_run_does_not_raise():
    parser = AmiParser()
    parser.feed(b"Asterisk Call Manager/" + b"9" * 5000 + b"\r\nResponse: Success\r\n\r\n")
    banner, msg = list(parser)
    assert isinstance(banner, Banner) and msg.response == "Success"


def test_encode_refuses_value_when_lone_surrogate():
    with pytest.raises(_EncodeError):
        Action.build("Originate", CallerID="\ud800")


def test_line_mixing_utf8_then_cp1251_decoded_as_cp1251_when_fast_or_careful():
    # The per-line rule: a line that is not valid UTF-8 is cp1251 as a whole, even when it
    # starts with valid UTF-8 (the fast path's codec handler must start over for that).
    line = b"CallerIDName: " + "Тест ".encode() + "Вася".encode("cp1251")
    body = b"Event: Newchannel\r\n" + line + b"\r\nExten: 902"
    fast = _parse_pieces(body + b"\r\n\r\n" + body + b"\r\n\r\n", [], expect_banner=False)
    careful = _parse_pieces(b"\r\n" + body + b"\r\n\r\n", [], expect_banner=False)
    expected = ("Тест ".encode() + "Вася".encode("cp1251")).decode("cp1251")
    assert [m.get("CallerIDName") for m in fast] == [expected, expected]
    assert _shape(fast[:1]) == _shape(careful)
    assert fast[0].get("Exten") == "902"
