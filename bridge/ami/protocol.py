"""Sans-I/O AMI: bytes in, messages out; actions in, bytes out. No sockets, threads or clocks.

Theory of operation
-------------------
An AMI stream is a banner line (`Asterisk Call Manager/<AMI version>`, not the Asterisk
version) followed by messages. A message is `Key: Value` lines ended by an empty line. Lines
end in CRLF, but transcripts and some proxies send a bare LF, so both are framing.

Two command-output styles exist. Up to Asterisk 13 `Response: Follows` carries raw text whose
lines end in a bare LF and may be empty, so that message ends only at `--END COMMAND--`
followed by an empty line. From 14 on, `Response: Success` carries one `Output:` header per
line, which needs no special framing.

We frame on bytes and decode each *complete* frame once, so a multibyte character split across
two reads is never cut. UTF-8 is tried on the whole frame (the fast path); if it fails, each
line is decoded on its own as UTF-8 or else cp1251, because old phones and trunks in Russia
send cp1251 caller names, and one stream carries both. Nothing is dropped: a byte cp1251 does
not define is kept as a `\\xNN` escape.

A hostile or broken peer cannot make us buffer without bound: a message longer than
`max_message` bytes, or with a line longer than `max_line`, is discarded up to its terminating
empty line and counted in `dropped`; the connection survives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence, Union

from bridge.ami import names
from bridge.errors import AmiEncodeError

# Asterisk's own input limit is 1024 bytes a line (main/manager.c); what it *sends* can be
# longer (long Command output lines, big ChanVariable sets), so we allow 64 KiB a line and
# 1 MiB a message: far above anything seen in the field, far below memory trouble.
DEFAULT_MAX_LINE = 64 * 1024
DEFAULT_MAX_MESSAGE = 1024 * 1024

# Limits Asterisk enforces on what it reads (main/manager.c: ASTMAN_MAX_HEADERS and the
# 1024-byte input buffer of get_input()).
AMI_MAX_LINE_BYTES = 1024
AMI_MAX_HEADERS = 128

_END = re.compile(rb"\n\r?\n")
_FOLLOWS = b"Response: Follows"
_END_COMMAND = b"--END COMMAND--"
_HEADER_LINE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*: ")
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+\Z")


class _NeedData:
    """Sentinel: the parser needs more bytes before it can return another message."""

    _instance: "_NeedData | None" = None

    def __new__(cls) -> "_NeedData":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True, slots=True)
class Banner:
    """The first line Asterisk sends: `Asterisk Call Manager/1.3` (AMI version, not Asterisk's)."""

    text: str
    version: tuple[int, ...]

    @property
    def version_text(self) -> str:
        return ".".join(str(p) for p in self.version)


@dataclass(frozen=True, slots=True)
class Message:
    """One AMI message: ordered (name, value) pairs, so repeated headers all survive.

    `text` is the message as received (decoded, lines joined by CRLF): what ROM-Asterisk-style
    regex filters search. `body` holds the raw output lines of a `Response: Follows` message.
    """

    headers: tuple[tuple[str, str], ...]
    text: str = ""
    body: tuple[str, ...] = ()
    _index: dict = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]] | Mapping[str, str]) -> "Message":
        items = tuple(pairs.items() if isinstance(pairs, Mapping) else pairs)
        return cls(items, "\r\n".join(f"{k}: {v}" for k, v in items))

    def _lookup(self) -> dict:
        index = self._index
        if index is None:
            index = {}
            for key, value in self.headers:
                index.setdefault(key.lower(), value)
            object.__setattr__(self, "_index", index)
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (case-insensitive), or `default` when absent."""
        return self._lookup().get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        """Every value of a repeated header (`Variable`, `ChanVariable`, `Output`), in order."""
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    @property
    def event(self) -> str | None:
        return self.get(names.EVENT)

    @property
    def response(self) -> str | None:
        return self.get(names.RESPONSE)

    @property
    def action_id(self) -> str | None:
        return self.get(names.ACTION_ID)

    @property
    def is_event(self) -> bool:
        return names.EVENT.lower() in self._lookup()

    @property
    def is_response(self) -> bool:
        # OriginateResponse events carry a `Response:` header too; an answer has no `Event:`.
        index = self._lookup()
        return names.RESPONSE.lower() in index and names.EVENT.lower() not in index

    @property
    def output(self) -> tuple[str, ...]:
        """Command output lines in either style (Follows body, or `Output:` headers)."""
        return self.body or tuple(self.get_all(names.OUTPUT))

    def as_dict(self) -> dict[str, str]:
        """First value per header name, original spelling; for logging and JSON."""
        out: dict[str, str] = {}
        for key, value in self.headers:
            out.setdefault(key, value)
        return out


ParserOutput = Union[Banner, Message, _NeedData]


def _decode_line(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1251", errors="backslashreplace")


def _decode(frame: bytes) -> str:
    try:
        return frame.decode("utf-8")
    except UnicodeDecodeError:
        return "\n".join(_decode_line(line) for line in frame.split(b"\n"))


def _split_header(line: str) -> tuple[str, str]:
    key, sep, value = line.partition(": ")
    if sep:
        return key, value
    # Kept, not fatal: `Key:` with nothing after it, or a line with no colon at all.
    key, sep, value = line.partition(":")
    return (key, value.strip()) if sep else (line, "")


class AmiParser:
    """Push bytes with `feed()`, pull `Banner` / `Message` / `NEED_DATA` with `next_message()`."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE, max_message: int = DEFAULT_MAX_MESSAGE,
                 expect_banner: bool = True) -> None:
        self.max_line = max_line
        self.max_message = max_message
        self.banner: Banner | None = None
        self.dropped = 0  # messages discarded for breaking max_line / max_message
        self._buf = bytearray()
        self._pos = 0
        self._want_banner = expect_banner
        self._discarding = False

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def __iter__(self):
        while (msg := self.next_message()) is not NEED_DATA:
            yield msg

    def next_message(self) -> ParserOutput:
        buf = self._buf
        while True:
            if self._discarding and not self._skip_discarded():
                return NEED_DATA
            pos = self._pos
            # Stray empty lines between messages (seen in transcripts) are not messages.
            while pos < len(buf) and buf[pos] in (0x0D, 0x0A):
                if buf[pos] == 0x0D and pos + 1 >= len(buf):
                    break
                pos += 1
            self._pos = pos
            if self._want_banner:
                banner = self._banner()
                if banner is NEED_DATA:
                    return NEED_DATA
                if banner is not None:
                    return banner
                continue
            if buf.startswith(_FOLLOWS, pos):
                end_cmd = buf.find(_END_COMMAND, pos)
                match = _END.search(buf, end_cmd) if end_cmd >= 0 else None
            else:
                match = _END.search(buf, pos)
            if match is None:
                if len(buf) - pos > self.max_message:
                    self._start_discarding()
                    continue
                return NEED_DATA
            end = match.start()
            if end > pos and buf[end - 1] == 0x0D:
                end -= 1
            frame = bytes(buf[pos:end])
            self._pos = match.end()
            if len(frame) > self.max_message or (
                len(frame) > self.max_line and max(map(len, frame.split(b"\n"))) > self.max_line
            ):
                self.dropped += 1
                continue
            if frame:
                return self._message(frame)

    def _banner(self) -> Banner | None | _NeedData:
        buf, pos = self._buf, self._pos
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if len(buf) - pos > self.max_line:
                self._want_banner = False
                return None
            return NEED_DATA
        line = _decode_line(bytes(buf[pos:nl]).rstrip(b"\r"))
        self._want_banner = False
        if ": " in line or "/" not in line:
            return None  # no banner (a capture that starts mid-session): parse it as a message
        self._pos = nl + 1
        version = tuple(int(p) for p in re.findall(r"\d+", line.rpartition("/")[2]))
        self.banner = Banner(line, version)
        return self.banner

    def _start_discarding(self) -> None:
        self.dropped += 1
        self._discarding = True
        # Keep the last bytes: an empty-line terminator may straddle this chunk and the next.
        del self._buf[: max(self._pos, len(self._buf) - 3)]
        self._pos = 0

    def _skip_discarded(self) -> bool:
        match = _END.search(self._buf, self._pos)
        if match is None:
            del self._buf[: max(self._pos, len(self._buf) - 3)]
            self._pos = 0
            return False
        self._pos = match.end()
        self._discarding = False
        return True

    @staticmethod
    def _message(frame: bytes) -> Message:
        if frame.startswith(_FOLLOWS):
            return _follows_message(frame)
        text = _decode(frame)
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        return Message(tuple(map(_split_header, lines)), "\r\n".join(lines))


def _follows_message(frame: bytes) -> Message:
    """`Response: Follows` (Asterisk <= 13): headers end in CRLF, raw output lines in bare LF."""
    raw_lines = frame.split(b"\n")
    crlf = raw_lines[0].endswith(b"\r")
    headers: list[tuple[str, str]] = []
    body: list[str] = []
    for index, raw in enumerate(raw_lines):
        line = _decode_line(raw.rstrip(b"\r"))
        is_header = raw.endswith(b"\r") if crlf else bool(_HEADER_LINE.match(line))
        if body or not is_header or line == names.END_COMMAND:
            if line == names.END_COMMAND and index == len(raw_lines) - 1:
                break
            body.append(line)
        else:
            headers.append(_split_header(line))
    text = "\r\n".join([f"{k}: {v}" for k, v in headers] + body + [names.END_COMMAND])
    return Message(tuple(headers), text, tuple(body))


# ---------------------------------------------------------------------------------------------
# Actions: what we send. Validated when built, so an invalid action cannot exist.

FieldValue = Union[str, int, float, bool, None, Sequence[str]]


@dataclass(frozen=True, slots=True)
class Action:
    """An AMI action. Building one with CR/LF anywhere, or past Asterisk's limits, raises."""

    name: str
    headers: tuple[tuple[str, str], ...] = ()
    action_id: str | None = None

    def __post_init__(self) -> None:
        _check_token("action name", self.name)
        if self.action_id is not None:
            _check_value(names.ACTION_ID, self.action_id)
        for key, value in self.headers:
            _check_token("header name", key)
            _check_value(key, value)
            if key.lower() in ("action", "actionid"):
                raise AmiEncodeError(f"header {key!r} is set by the Action itself")
        count = len(self.headers) + 1 + (self.action_id is not None)
        if count > AMI_MAX_HEADERS:
            raise AmiEncodeError(f"action {self.name} has {count} headers; Asterisk reads at most {AMI_MAX_HEADERS}")

    @classmethod
    def build(cls, name: str, action_id: str | None = None, **fields: FieldValue) -> "Action":
        """`Action.build("Originate", Channel="PJSIP/100", Variable=["A=1", "B=2"])`.

        None values are left out, booleans become `true`/`false`, and a list becomes one line
        per item (send `Variable` that way: the separator changed from `|` to `,` in 1.6).
        """
        return cls(name, tuple(_pairs(fields.items())), action_id)

    def with_action_id(self, action_id: str) -> "Action":
        return replace(self, action_id=action_id)

    def get(self, key: str) -> str | None:
        lkey = key.lower()
        return next((v for k, v in self.headers if k.lower() == lkey), None)

    def encode(self) -> bytes:
        lines = [f"Action: {self.name}"]
        if self.action_id is not None:
            lines.append(f"ActionID: {self.action_id}")
        lines.extend(f"{k}: {v}" for k, v in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _pairs(items: Iterable[tuple[str, FieldValue]]) -> Iterable[tuple[str, str]]:
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, bool):
            yield key, "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield key, str(item)
        else:
            yield key, str(value)


def _check_token(what: str, value: str) -> None:
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise AmiEncodeError(f"{what} {value!r} must be letters, digits, '_' or '-'")


def _check_value(key: str, value: str) -> None:
    if not isinstance(value, str):
        raise AmiEncodeError(f"header {key}: value must be a string, not {type(value).__name__}")
    if "\r" in value or "\n" in value or "\x00" in value:
        raise AmiEncodeError(f"header {key}: CR, LF and NUL are not allowed in AMI values")
    size = len(key) + 2 + len(value.encode("utf-8")) + 2
    if size > AMI_MAX_LINE_BYTES:
        raise AmiEncodeError(f"header {key}: line is {size} bytes; Asterisk reads at most {AMI_MAX_LINE_BYTES}")
