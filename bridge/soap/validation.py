"""Checks every string a SOAP request may carry into AMI; a violation is a Client.InvalidArgument fault."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from bridge.config import ClickToCallConfig, SoapConfig
from bridge.errors import SoapRequestError

INVALID_ARGUMENT = "Client.InvalidArgument"
NOT_ALLOWED = "Client.NotAllowed"

# Sizes from Asterisk's own buffers (include/asterisk/channel.h): AST_CHANNEL_NAME 80,
# AST_MAX_CONTEXT 80, AST_MAX_EXTENSION 80, AST_MAX_ACCOUNT_CODE 80 (all including the NUL).
MAX_CHANNEL = 79
MAX_CONTEXT = 79
MAX_EXTEN = 79
MAX_ACCOUNT = 79
MAX_CALLER_ID = 128
MAX_CALL_ID = 150                   # AST_MAX_PUBLIC_UNIQUEID is 149
MAX_ORIGINATE_ID = 64
MAX_SERVER = 64
MAX_VARIABLES = 32                  # Asterisk reads 128 headers an action; leave room for the rest
MAX_VARIABLE_VALUE = 512
MAX_PRIORITY = 1_000_000
MIN_TIMEOUT_MS = 1_000
MAX_TIMEOUT_MS = 3_600_000

# Technology/resource, e.g. PJSIP/202, SIP/trunk/89001234567, Local/202@from-internal.
# A live Local channel's name ends in `;1`/`;2` (the half): Hangup/Redirect must accept it.
_CHANNEL = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*/[A-Za-z0-9_\-.@/:+#*~]+(;[12])?\Z")
_CONTEXT = re.compile(r"[A-Za-z0-9_\-.]+\Z")
# Dialable strings only: no dialplan patterns (a leading `_`, as in `_X.`) and no `|`/`,`.
_EXTEN = re.compile(r"(?!_)[A-Za-z0-9+*#_\-.]+\Z")
_ACCOUNT = re.compile(r"[A-Za-z0-9_\-.@:]+\Z")
_CALL_ID = re.compile(r"[A-Za-z0-9_\-.@:]+\Z")
_SERVER = re.compile(r"[A-Za-z0-9_\-.]+\Z")
# `__NAME` inherits to all children; parentheses are refused because Asterisk turns
# `FUNC(arg)=value` into a dialplan function write (pbx_builtin_setvar_helper), e.g. FILE().
_VAR_NAME = re.compile(r"_{0,2}[A-Za-z][A-Za-z0-9_]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class OriginateRequest:
    """An Originate that passed validation: every field is safe to put on an AMI line."""

    channel: str
    context: str
    exten: str
    priority: int
    server: str | None = None
    caller_id: str | None = None
    timeout_ms: int | None = None
    variables: tuple[str, ...] = ()
    account: str | None = None


def _fail(field: str, message: str, code: str = INVALID_ARGUMENT) -> SoapRequestError:
    return SoapRequestError(f"{field}: {message}", faultcode=code)


def text(field: str, value: object, limit: int, pattern: re.Pattern | None = None,
         required: bool = True) -> str | None:
    """A string without control characters, at most `limit` characters, matching `pattern`."""
    if value is None or value == "":
        if required:
            raise _fail(field, "is required")
        return None
    if not isinstance(value, str):
        raise _fail(field, "must be a string")
    if _CONTROL.search(value):
        raise _fail(field, "must not contain CR, LF, NUL or other control characters")
    if len(value) > limit:
        raise _fail(field, f"is {len(value)} characters long; at most {limit} are allowed")
    if pattern is not None and not pattern.match(value):
        raise _fail(field, f"contains characters that are not allowed ({_describe(pattern)})")
    return value


def _describe(pattern: re.Pattern) -> str:
    return {
        _CHANNEL: "expected Technology/resource of letters, digits and _-.@/:+#*~ (and a Local ;1/;2 half)",
        _CONTEXT: "letters, digits, '_', '-', '.'",
        _EXTEN: "letters, digits and + * # _ - .",
        _ACCOUNT: "letters, digits and _ - . @ :",
        _CALL_ID: "letters, digits and _ - . @ :",
        _SERVER: "letters, digits, '_', '-', '.'",
    }.get(pattern, pattern.pattern)


def channel(value: object, field: str = "channel") -> str:
    return text(field, value, MAX_CHANNEL, _CHANNEL)  # type: ignore[return-value]


def context(value: object, field: str = "context", required: bool = True) -> str | None:
    return text(field, value, MAX_CONTEXT, _CONTEXT, required)


def exten(value: object, field: str = "exten", required: bool = True) -> str:
    return text(field, value, MAX_EXTEN, _EXTEN, required)  # type: ignore[return-value]


def call_id(value: object, field: str = "callId", required: bool = True) -> str | None:
    return text(field, value, MAX_CALL_ID, _CALL_ID, required)


def originate_id(value: object) -> str:
    return text("originateId", value, MAX_ORIGINATE_ID, _CALL_ID)  # type: ignore[return-value]


def server(value: object) -> str | None:
    return text("server", value, MAX_SERVER, _SERVER, required=False)


def caller_id(value: object) -> str | None:
    return text("callerId", value, MAX_CALLER_ID, required=False)


def integer(field: str, value: object, low: int, high: int, required: bool = True) -> int | None:
    if value is None:
        if required:
            raise _fail(field, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, "must be an integer")
    if not low <= value <= high:
        raise _fail(field, f"must be between {low} and {high}")
    return value


def variables(values: Sequence[object] | None) -> tuple[str, ...]:
    """`NAME=value` items, sent as one `Variable:` line each (the separator changed in 1.6)."""
    items = [v for v in (values or ()) if v is not None]
    if len(items) > MAX_VARIABLES:
        raise _fail("variables", f"has {len(items)} items; at most {MAX_VARIABLES} are allowed")
    out = []
    for index, item in enumerate(items):
        field = f"variables[{index}]"
        raw = text(field, item, MAX_VARIABLE_VALUE + MAX_CONTEXT)
        name, sep, value = raw.partition("=")  # type: ignore[union-attr]
        if not sep or not _VAR_NAME.match(name):
            raise _fail(field, "must be NAME=value with NAME of letters, digits and '_'")
        # Asterisk splits a Variable line on ',' (and '|' before 1.6): a comma would smuggle a
        # second assignment, possibly a function write.
        if "," in value or "|" in value:
            raise _fail(field, "value must not contain ',' or '|'")
        if len(value) > MAX_VARIABLE_VALUE:
            raise _fail(field, f"value is longer than {MAX_VARIABLE_VALUE} characters")
        out.append(raw)
    return tuple(out)  # type: ignore[arg-type]


def check_context_allowed(value: str, cfg: SoapConfig, field: str = "context") -> None:
    if cfg.allowed_contexts and value not in cfg.allowed_contexts:
        raise _fail(field, f"context {value!r} is not in the allowed list", NOT_ALLOWED)


def check_channel_allowed(value: str, patterns: Sequence[re.Pattern], field: str = "channel") -> None:
    if patterns and not any(p.fullmatch(value) for p in patterns):
        raise _fail(field, f"channel {value!r} does not match an allowed pattern", NOT_ALLOWED)


# A live channel's name is the dial string plus a unique suffix (`PJSIP/202-0000001a`, Local
# halves `Local/202@ctx-00000003;1`); allowed_channels patterns are written for dial strings.
_LIVE_SUFFIX = re.compile(r"-[0-9a-fA-F]{6,}(?:;[12])?$")


def check_live_channel_allowed(value: str, patterns: Sequence[re.Pattern], field: str = "channel") -> None:
    """Hangup/Redirect act on live channels: the name, or the name without its unique suffix,
    must match an allowed pattern (else a caller could hang up or move a trunk channel)."""
    if not patterns:
        return
    base = _LIVE_SUFFIX.sub("", value)
    if not any(p.fullmatch(value) or p.fullmatch(base) for p in patterns):
        raise _fail(field, f"channel {value!r} does not match an allowed pattern", NOT_ALLOWED)


def check_local_context(value: str, cfg: SoapConfig, field: str = "channel") -> None:
    """`Local/exten@context` runs dialplan in `context`: it must be allowed like `context` itself
    (without `@context`, Asterisk uses `default`)."""
    if not cfg.allowed_contexts or value[:6].lower() != "local/":
        return
    target = value[6:].split("/", 1)[0]
    _, at, ctx = target.partition("@")
    ctx = _LIVE_SUFFIX.sub("", ctx) if at else "default"
    check_context_allowed(ctx, cfg, field)


def compile_channel_patterns(cfg: SoapConfig) -> tuple[re.Pattern, ...]:
    return tuple(re.compile(p) for p in cfg.allowed_channels)


def originate(cfg: SoapConfig, patterns: Sequence[re.Pattern], *, server_name: object, chan: object,
              ctx: object, ext: object, priority: object, caller: object, timeout_ms: object,
              variable_list: Sequence[object] | None, account: object) -> OriginateRequest:
    """Validate every Originate field (order: what the 1C developer most likely got wrong first)."""
    request = OriginateRequest(
        server=server(server_name),
        channel=channel(chan),
        context=context(ctx),  # type: ignore[arg-type]
        exten=exten(ext),
        priority=integer("priority", 1 if priority is None else priority, 1, MAX_PRIORITY),  # type: ignore[arg-type]
        caller_id=caller_id(caller),
        timeout_ms=integer("timeoutMs", timeout_ms, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS, required=False),
        variables=variables(variable_list),
        account=text("account", account, MAX_ACCOUNT, _ACCOUNT, required=False),
    )
    check_context_allowed(request.context, cfg)
    check_channel_allowed(request.channel, patterns)
    check_local_context(request.channel, cfg)
    return request


def click_to_call(ctc: ClickToCallConfig, *, extension: object, number: object,
                  caller: object) -> OriginateRequest:
    """ClickToCall: ring `extension` through the configured channel template, then dial `number`."""
    ext = exten(extension, "extension")
    num = exten(number, "number")
    chan = channel(ctc.channel.format(extension=ext), "extension")
    shown = caller_id(caller)
    return OriginateRequest(
        server=ctc.server,
        channel=chan,
        context=ctc.context,
        exten=num,
        priority=ctc.priority,
        # The user's own phone rings first; showing the dialled number tells them whom they call.
        caller_id=shown if shown is not None else num,
        timeout_ms=ctc.timeout_ms,
    )
