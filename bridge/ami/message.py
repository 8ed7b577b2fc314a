"""AMI messages as the parser hands them out: `Message`, `Banner` and the `NEED_DATA` sentinel.

`Message` holds ordered (name, value) pairs so repeated headers survive; `_LazyMessage` is the
parser's fast-path variant that splits its headers only when first read (protocol.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import repeat
from typing import Iterable, Mapping

from bridge.ami import names


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


_HEADERS_SLOT = Message.__dict__["headers"]
_TEXT_SLOT = Message.__dict__["text"]
_BODY_SLOT = Message.__dict__["body"]
_INDEX_SLOT = Message.__dict__["_index"]


def _crlf_headers(text: str) -> tuple[tuple[str, str], ...]:
    return tuple([(k, v) if sep else _split_header(k)
                  for k, sep, v in map(str.partition, text.split("\r\n"), repeat(": "))])


class _LazyMessage(Message):
    """A Message from the parser's fast path: its text is decoded, its headers split on first use.

    Most events are routed by name and searched as text, and never need their header tuple:
    `event`/`is_event`/`is_response` answer from the first line. Compares and hashes equal
    to a Message with the same content.
    """

    __slots__ = ()

    @property  # type: ignore[override]
    def headers(self) -> tuple[tuple[str, str], ...]:
        headers = _HEADERS_SLOT.__get__(self)
        if headers is None:
            headers = _crlf_headers(_TEXT_SLOT.__get__(self))
            _HEADERS_SLOT.__set__(self, headers)
        return headers

    @headers.setter
    def headers(self, value: tuple[tuple[str, str], ...]) -> None:  # for the dataclass __init__/replace
        _HEADERS_SLOT.__set__(self, value)

    @property  # type: ignore[override]
    def body(self) -> tuple[str, ...]:
        try:
            return _BODY_SLOT.__get__(self)
        except AttributeError:  # left unset by _lazy_messages: the fast path never takes Follows
            return ()

    @body.setter
    def body(self, value: tuple[str, ...]) -> None:
        _BODY_SLOT.__set__(self, value)

    @property
    def event(self) -> str | None:
        text = self.text
        if text.startswith("Event: "):
            end = text.find("\r\n")
            return text[7:end] if end >= 0 else text[7:]
        return Message.event.fget(self)  # type: ignore[attr-defined]

    @property
    def is_event(self) -> bool:
        return self.text.startswith("Event: ") or Message.is_event.fget(self)  # type: ignore[attr-defined]

    @property
    def is_response(self) -> bool:
        return not self.text.startswith("Event: ") and Message.is_response.fget(self)  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.headers, self.text, self.body) == (other.headers, other.text, other.body)

    def __hash__(self) -> int:
        return hash((self.headers, self.text, self.body))

    def __repr__(self) -> str:
        return f"Message(headers={self.headers!r}, text={self.text!r}, body={self.body!r})"


_consume = deque(maxlen=0).extend


def _lazy_messages(texts: list[str]) -> list[Message]:
    """One _LazyMessage per text, built by C-level maps (no Python frame per message)."""
    count = len(texts)
    msgs = list(map(object.__new__, repeat(_LazyMessage, count)))
    _consume(map(_TEXT_SLOT.__set__, msgs, texts))
    _consume(map(_HEADERS_SLOT.__set__, msgs, repeat(None, count)))  # None: not split yet
    _consume(map(_INDEX_SLOT.__set__, msgs, repeat(None, count)))
    return msgs


def _split_header(line: str) -> tuple[str, str]:
    key, sep, value = line.partition(": ")
    if sep:
        return key, value
    # Kept, not fatal: `Key:` with nothing after it, or a line with no colon at all.
    key, sep, value = line.partition(":")
    return (key, value.strip()) if sep else (line, "")
