"""The AMI login handshake (plain secret or MD5 challenge) and what follows it on every login."""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import Future, TimeoutError as FutureTimeout
from typing import Callable, Sequence

from bridge.ami import names
from bridge.ami.connection import ActionResult
from bridge.ami.actions import Action
from bridge.errors import AmiActionError, AmiAuthError, AmiConnectionError, AmiError

log = logging.getLogger(__name__)

AUTH_MODES = ("md5", "plain")
Send = Callable[[Action], Future]


def md5_key(challenge: str, secret: str) -> str:
    """`Key` for `AuthType: MD5`: md5(challenge + secret) in lower-case hex (main/manager.c)."""
    return hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()


def wait(future: Future, timeout_s: float, what: str) -> ActionResult:
    try:
        return future.result(timeout_s)
    except FutureTimeout:
        raise AmiConnectionError(f"no answer to {what} within {timeout_s:g} s") from None


def login(send: Send, username: str, secret: str, *, auth: str, events: str, timeout_s: float) -> None:
    """Log in; AmiAuthError when refused. The secret is never put in a message or a log line."""
    if auth not in AUTH_MODES:
        raise AmiAuthError(f"unknown auth mode {auth!r}; use one of {', '.join(AUTH_MODES)}")
    fields: dict[str, str] = {"Username": username, "Events": events}
    if auth == "md5":
        challenge = _challenge(send, timeout_s)
        fields.update(AuthType="MD5", Key=md5_key(challenge, secret))
    else:
        fields["Secret"] = secret
    try:
        wait(send(Action.build(names.LOGIN, **fields)), timeout_s, "Login")
    except AmiActionError as exc:
        reason = exc.response.get(names.MESSAGE) if exc.response is not None else None
        raise AmiAuthError(f"login refused for user {username!r} ({auth}): {reason or 'Response: Error'}; "
                           f"check the secret and manager.conf") from None


def _challenge(send: Send, timeout_s: float) -> str:
    try:
        result = wait(send(Action.build(names.CHALLENGE, AuthType="MD5")), timeout_s, "Challenge")
    except AmiActionError as exc:
        raise AmiAuthError(f"MD5 challenge refused: {exc.message}") from None
    challenge = result.response.get("Challenge")
    if not challenge:
        raise AmiAuthError("the server answered Challenge without a challenge")
    return challenge


def apply_filters(send: Send, filters: Sequence[str], timeout_s: float) -> int:
    """Send one `Filter` action per line (they last one session); returns how many were accepted.

    A refusal is logged, not fatal: `Filter` needs `system` write permission (Asterisk 13+), and
    events still flow unfiltered without it.
    """
    accepted = 0
    for line in filters:
        try:
            wait(send(Action.build(names.FILTER, Operation="Add", Filter=line)), timeout_s, "Filter")
            accepted += 1
        except AmiActionError as exc:
            log.warning("AMI Filter %r refused (needs write=system, Asterisk 13+): %s", line, exc.message)
    return accepted


def asterisk_version(send: Send, timeout_s: float) -> str | None:
    """Best effort `CoreSettings` → AsteriskVersion (the banner only carries the AMI version)."""
    try:
        result = wait(send(Action.build("CoreSettings")), timeout_s, "CoreSettings")
    except AmiError as exc:
        log.info("CoreSettings unavailable (needs write=system or reporting in manager.conf): %s", exc.message)
        return None
    return result.response.get("AsteriskVersion")
