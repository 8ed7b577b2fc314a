"""AMI actions: what we send, validated when built so that an invalid action cannot exist."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable, Sequence, Union

from bridge.ami import names
from bridge.errors import AmiEncodeError

# Limits Asterisk enforces on what it reads (main/manager.c: ASTMAN_MAX_HEADERS and the
# 1024-byte input buffer of get_input()).
AMI_MAX_LINE_BYTES = 1024
AMI_MAX_HEADERS = 128

_TOKEN = re.compile(r"[A-Za-z0-9_\-]+\Z")


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
    try:
        size = len(key) + 2 + len(value.encode("utf-8")) + 2
    except UnicodeEncodeError:  # a lone surrogate: no byte sequence can carry it
        raise AmiEncodeError(f"header {key}: value is not encodable as UTF-8") from None
    if size > AMI_MAX_LINE_BYTES:
        raise AmiEncodeError(f"header {key}: line is {size} bytes; Asterisk reads at most {AMI_MAX_LINE_BYTES}")
