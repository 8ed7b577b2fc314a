"""Control characters made visible, for log lines and terminal output.

Text from peers (an ERP's fault string, an AMI value, a SOAP user name) may hold CR/LF, which
would forge log lines, or ESC sequences, which drive the admin's terminal (`outbox show`). They
are written as `\\n`, `\\r`, `\\x1b`; tab stays. One C-level `str.translate` pass.
"""

from __future__ import annotations

_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0a, 0x20), 0x7f,
                                        *range(0x80, 0xa0)]}
_ESCAPES.update({0x0a: "\\n", 0x0d: "\\r"})


def escape_controls(text: str) -> str:
    """`text` with C0/C1 control characters and DEL as visible escapes."""
    return text.translate(_ESCAPES)
