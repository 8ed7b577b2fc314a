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

What the parser hands out (`Message`, `Banner`, `NEED_DATA`) lives in message.py, what we send
(`Action`) in actions.py; both are re-exported here.
"""

from __future__ import annotations

import codecs
import re
from collections import deque
from typing import Union

from bridge.ami import names
# Messages (what the parser hands out) live in message.py, actions (what we send) in actions.py;
# import them from there.
from bridge.ami.message import NEED_DATA, Banner, Message, _lazy_messages, _NeedData, _split_header

# Asterisk's own input limit is 1024 bytes a line (main/manager.c); what it *sends* can be
# longer (long Command output lines, big ChanVariable sets), so we allow 64 KiB a line and
# 1 MiB a message: far above anything seen in the field, far below memory trouble.
DEFAULT_MAX_LINE = 64 * 1024
DEFAULT_MAX_MESSAGE = 1024 * 1024

_END = re.compile(rb"\n\r?\n")
_FOLLOWS = b"Response: Follows"
_END_COMMAND = b"--END COMMAND--"
_HEADER_LINE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*: ")


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


def _cp1251_rest_of_line(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: a line that is not UTF-8 is cp1251 (see _decode_line).

    Called at the first bad byte of a line, it decodes the rest of that line as cp1251, which
    equals decoding the whole line so when the part before is ASCII; otherwise it returns a
    marker (a lone surrogate, which strict UTF-8 never yields) and the caller starts over.
    """
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    data, start = exc.object, exc.start
    if not data[data.rfind(b"\n", 0, start) + 1:start].isascii():
        return _REDO_MARK, exc.end
    end = data.find(b"\n", start)
    if end < 0:
        end = len(data)
    return bytes(data[start:end]).decode("cp1251", errors="backslashreplace"), end


_REDO_MARK = "\udfff"
_CP1251_LINES = "bridge.ami.cp1251-line"
codecs.register_error(_CP1251_LINES, _cp1251_rest_of_line)


def _decode_frames(region: bytes) -> list[str]:
    """Decode CRLF-CRLF separated frames in one pass; cp1251 lines through the error handler."""
    text = region.decode("utf-8", _CP1251_LINES)
    if _REDO_MARK in text:
        return _decode_frames_one_by_one(region)
    return text.split("\r\n\r\n")


def _decode_frames_one_by_one(region: bytes) -> list[str]:
    """Decode CRLF-CRLF separated frames: valid UTF-8 runs at once, and only the frames
    that are not valid UTF-8 (cp1251 names) through the per-line fallback."""
    texts: list[str] = []
    view = memoryview(region)
    start = 0
    while True:
        try:
            texts.extend(str(view[start:], "utf-8").split("\r\n\r\n"))
            return texts
        except UnicodeDecodeError as exc:
            bad = start + exc.start
        frame_start = region.rfind(b"\r\n\r\n", start, bad)
        if frame_start >= 0:
            texts.extend(str(view[start:frame_start], "utf-8").split("\r\n\r\n"))
            frame_start += 4
        else:
            frame_start = start
        frame_end = region.find(b"\r\n\r\n", bad)
        if frame_end < 0:
            texts.append(_decode(region[frame_start:]))
            return texts
        texts.append(_decode(region[frame_start:frame_end]))
        start = frame_end + 4


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
        self._ready: deque[Message] = deque()
        self._careful_until = 0  # the fast path already refused the buffer up to here

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._careful_until = max(0, self._careful_until - self._pos)
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def __iter__(self):
        # popleft per message, so a consumer that stops early loses nothing still queued.
        ready = self._ready
        while True:
            while ready:
                yield ready.popleft()
            msg = self.next_message()
            if msg is NEED_DATA:
                return
            yield msg

    def next_message(self) -> ParserOutput:
        if self._ready:
            return self._ready.popleft()
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
            if self._frame_bulk():
                if self._ready:
                    return self._ready.popleft()
                continue
            if buf.startswith(_FOLLOWS, pos):
                end_cmd = buf.find(_END_COMMAND, pos)
                match = _END.search(buf, end_cmd) if end_cmd >= 0 else None
            else:
                match = _END.search(buf, pos)
            if match is None:
                # Up to 3 bytes of the terminator (CR LF CR) may be here already; without this
                # margin a message within 3 bytes of max_message was dropped or kept by chunking.
                if len(buf) - pos > self.max_message + 3:
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

    def _frame_bulk(self) -> bool:
        """Fast path: frame and decode every complete message in the buffer at C speed.

        Only for the common case, a pure-CRLF run of messages without `Response: Follows` or
        stray empty lines: there the terminators are exactly the `\\r\\n\\r\\n` runs, so one
        bytes.split finds them all. Anything else returns False and goes message by message
        through the careful path, which handles bare LF, Follows bodies and the size limits.
        """
        buf, pos = self._buf, self._pos
        if pos < self._careful_until:
            return False
        last = buf.rfind(b"\r\n\r\n", pos)
        if last <= pos:
            return False
        self._careful_until = last  # unless accepted below: don't rescan this region per message
        region = bytes(buf[pos:last])
        # Every LF preceded by CR (so no bare-LF line and no LF-LF terminator), no Follows body,
        # no stray empty line or stray CR after a message end (the careful path skips those as
        # blank; found by the chunking fuzz test): then each CRLF-CRLF is exactly one message end.
        if (region.count(b"\n") != region.count(b"\r\n") or _FOLLOWS in region
                or region.endswith(b"\r\n") or b"\r\n\r\n\r" in region):
            return False
        texts = _decode_frames(region)
        # A character is at most 4 bytes: frames this short cannot break max_line/max_message.
        limit = min(self.max_line, self.max_message)
        if len(region) > limit and max(map(len, texts)) * 4 > limit:
            return False
        self._pos = last + 4
        self._careful_until = 0
        self._ready.extend(_lazy_messages(texts))
        return True

    def _banner(self) -> Banner | None | _NeedData:
        buf, pos = self._buf, self._pos
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if len(buf) - pos > self.max_line:
                self._want_banner = False
                return None
            return NEED_DATA
        self._want_banner = False
        if nl - pos > self.max_line:
            # Too long to be a banner, the same verdict as above when it arrives in pieces.
            return None
        line = _decode_line(bytes(buf[pos:nl]).rstrip(b"\r"))
        if ": " in line or "/" not in line:
            return None  # no banner (a capture that starts mid-session): parse it as a message
        self._pos = nl + 1
        # [0-9]{1,9}: \d would admit non-ASCII digits, and a hostile 5000-digit run breaks int().
        version = tuple(int(p) for p in re.findall(r"[0-9]{1,9}", line.rpartition("/")[2]))
        self.banner = Banner(line, version)
        return self.banner

    def _start_discarding(self) -> None:
        self.dropped += 1
        self._discarding = True
        # Skip to the first terminator after the byte that broke the limit, wherever the chunks
        # fell: fed one byte at a time, this is where discarding starts (3 bytes kept, as a
        # terminator may straddle them). Deleting the whole buffer instead lost the terminators
        # inside a long unterminated `Response: Follows` body, but only when it arrived whole.
        del self._buf[: self._pos + self.max_message + 1]
        self._pos = self._careful_until = 0

    def _skip_discarded(self) -> bool:
        match = _END.search(self._buf, self._pos)
        if match is None:
            del self._buf[: max(self._pos, len(self._buf) - 3)]
            self._pos = self._careful_until = 0
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
