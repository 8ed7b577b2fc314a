"""Sans-I/O AJAM (AMI over HTTP): actions → form fields, rawman bodies → the AMI parser's messages.

Theory of operation
-------------------
Asterisk's HTTP manager (main/manager.c `generic_http_callback`) turns each request's form
fields into one AMI action and answers with what a TCP session would have received for it,
framed the same way (`Key: Value` CRLF lines, an empty line after each message). So a rawman
body is parsed by the ordinary `AmiParser` (no banner), never by a second parser:

- an action's body is its response, then, for a list action (`EventList: start`), the list's
  events and the `...Complete` event;
- a `WaitEvent` body is `Response: Success` / `Message: Waiting for Event completed.`, the
  events queued for the session since the last WaitEvent, and `Event: WaitEventComplete`.

Events reach an HTTP session only through WaitEvent; an action's body never carries them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.ami import names
from bridge.ami.actions import Action
from bridge.ami.connection import ActionResult
from bridge.ami.message import NEED_DATA, Message
from bridge.ami.protocol import AmiParser
from bridge.errors import AmiProtocolError

RAWMAN = "rawman"            # cookie sessions: Login, then the mansession_id cookie
ARAWMAN = "arawman"          # HTTP Digest on every request (the session is keyed by the nonce)
WAIT_EVENT = "WaitEvent"
WAIT_EVENT_COMPLETE = "WaitEventComplete"
# What Asterisk answers an action on a session that is not logged in: an expired or purged
# cookie session, or one Asterisk forgot in a restart. A user lacking an action's write class
# gets the same words, so a caller tells the two apart with a Ping (it needs no class).
PERMISSION_DENIED = "Permission denied"
COOKIE = "mansession_id"


def form_fields(action: Action) -> list[tuple[str, str]]:
    """The action as ordered form fields; repeated headers (`Variable`) stay repeated.

    The Action already refused CR/LF/NUL and over-long lines when it was built, so nothing from
    outside can add a header; requests URL-encodes every name and value of the form.
    """
    fields = [(names.ACTION, action.name)]
    if action.action_id is not None:
        fields.append((names.ACTION_ID, action.action_id))
    fields.extend(action.headers)
    return fields


def parse_body(body: bytes) -> list[Message]:
    """Every message of a rawman body, in order (UTF-8 and cp1251 values as on TCP)."""
    parser = AmiParser(expect_banner=False)
    parser.feed(body)
    if body.strip() and not body.endswith((b"\n\r\n", b"\n\n")):
        parser.feed(b"\r\n\r\n")  # a last message without its empty line: still a message
    out: list[Message] = []
    while (msg := parser.next_message()) is not NEED_DATA:
        out.append(msg)  # type: ignore[arg-type]  # no banner expected: only Messages come out
    if parser.dropped:
        raise AmiProtocolError(f"rawman body: {parser.dropped} message(s) over the size limits")
    return out


def session_lost(response: Message) -> bool:
    return response.response == names.ERROR and (response.get(names.MESSAGE) or "") == PERMISSION_DENIED


@dataclass(frozen=True)
class WaitEventResult:
    """One WaitEvent answer: its response and the events in arrival order (the terminator left out)."""

    response: Message
    events: tuple[Message, ...]
    complete: bool            # False: another WaitEvent on this session took over (Asterisk kicks the older)


def wait_event_result(body: bytes) -> WaitEventResult:
    messages = parse_body(body)
    if not messages:
        # An abandoned WaitEvent (a newer one on the same session kicked it) answers 200 with no body.
        return WaitEventResult(Message.from_pairs([(names.RESPONSE, names.SUCCESS)]), (), False)
    response, rest = messages[0], messages[1:]
    if not response.is_response:
        raise AmiProtocolError(f"WaitEvent answered with {response.event or 'a message'} before its response")
    complete = bool(rest) and (rest[-1].event or "") == WAIT_EVENT_COMPLETE
    events = tuple(m for m in rest if (m.event or "") != WAIT_EVENT_COMPLETE)
    return WaitEventResult(response, events, complete)


def action_result(body: bytes) -> ActionResult:
    """An action's answer as the TCP client hands it out: response, list events, Complete event."""
    messages = parse_body(body)
    if not messages or not messages[0].is_response:
        raise AmiProtocolError("the HTTP manager answered without an AMI response")
    response, rest = messages[0], messages[1:]
    if not rest:
        return ActionResult(response)
    complete = None
    if (rest[-1].get(names.EVENT_LIST) or "").lower() == "complete" or (rest[-1].event or "").endswith("Complete"):
        complete, rest = rest[-1], rest[:-1]
    return ActionResult(response, tuple(rest), complete)
