"""Text that XML 1.0 can carry: the one rule for every SOAP answer and every PushEvent envelope.

AMI values sometimes hold characters XML 1.0 cannot carry at all, not even as a character
reference (NUL, ESC, VT, BEL from phones and trunks; U+FFFE/U+FFFF; lone surrogates). They are
spelled as the visible text `\\x1b` (or `\\ufffe`), so the value stays readable and an answer or
envelope never breaks on one caller name. Both functions are one C-level `str.translate` pass.
"""

from __future__ import annotations

import re

_INVALID = [*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), *range(0xd800, 0xe000), 0xfffe, 0xffff]
_VISIBLE = {c: ("\\x%02x" % c if c < 0x100 else "\\u%04x" % c) for c in _INVALID}
# For character data and attribute values we write ourselves: also the XML specials, and CR as a
# reference so XML end-of-line normalisation cannot turn AMI's CR into LF on the reader's side.
_ESCAPED = {**_VISIBLE, ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord('"'): "&quot;",
            ord("\r"): "&#13;"}
# Fast path: most values need nothing (one regex scan, no new string).
_PLAIN = re.compile("[^&<>\"\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]*")
_VALID = re.compile("[^\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]*")


def visible(value: str) -> str:
    """`value` with XML-invalid characters spelled visibly; for text a serializer escapes (spyne)."""
    return value if _VALID.fullmatch(value) else value.translate(_VISIBLE)


def xml_text(value: object) -> str:
    """`value` as XML 1.0 character data / attribute text, escaped; never raises."""
    text = value if isinstance(value, str) else str(value)
    return text if _PLAIN.fullmatch(text) else text.translate(_ESCAPED)


def is_plain(text: str) -> bool:
    """True when `text` can be written as XML character data as it is."""
    return _PLAIN.fullmatch(text) is not None
