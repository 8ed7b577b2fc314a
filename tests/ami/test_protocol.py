"""The sans-I/O AMI parser and action encoder (bridge/ami/protocol.py)."""

from __future__ import annotations

import collections

import pytest

from bridge.ami.protocol import NEED_DATA, Action, AmiParser, Banner, Message
from bridge.errors import AmiEncodeError
from tests.conftest import AMI_FIXTURES

# Counts from tests/fixtures/README.md: (banner, messages, events)
CAPTURE_COUNTS = {
    "asterisk-22.10.1/blind-transfer-callerleg-22.10.1.ami": ("11.0.0", 82, 78),
    "asterisk-22.10.1/calls-22.10.1.ami": ("11.0.0", 191, 183),
    "asterisk-22.10.1/coreshowchannels-22.10.1.ami": (None, 4, 3),
    "asterisk-22.10.1/cp1251-callerid-amiheader-22.10.1.ami": ("11.0.0", 28, 25),
    "asterisk-22.10.1/limited-user-22.10.1.ami": ("11.0.0", 51, 46),
    "asterisk-22.10.1/login-md5-ok-22.10.1.ami": ("11.0.0", 6, 2),
    "asterisk-22.10.1/queue-22.10.1.ami": ("11.0.0", 203, 200),
    "asterisk-22.10.1/status-22.10.1.ami": (None, 4, 3),
    "asterisk-11.25.3/calls-11.25.3.ami": ("1.3", 128, 120),
    "asterisk-11.25.3/command-queue-show-support-after-11.25.3.ami": (None, 1, 0),
    "asterisk-11.25.3/originate-200-answered-11.25.3.ami": ("1.3", 58, 55),
    "asterisk-11.25.3/queue-11.25.3.ami": ("1.3", 115, 112),
}


def parse_all(data: bytes, chunk: int | None = None) -> list:
    parser = AmiParser()
    out = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        parser.feed(data[i : i + step])
        out.extend(parser)
    return out


@pytest.mark.parametrize("name", sorted(CAPTURE_COUNTS))
def test_capture_counts_match_readme_when_parsed_whole(name):
    banner, n_messages, n_events = CAPTURE_COUNTS[name]
    out = parse_all((AMI_FIXTURES / name).read_bytes())
    banners = [m for m in out if isinstance(m, Banner)]
    messages = [m for m in out if isinstance(m, Message)]
    assert (banners[0].version_text if banners else None) == banner
    assert len(messages) == n_messages
    assert sum(m.is_event for m in messages) == n_events


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
