"""Logging setup: text or JSON lines on stderr, with every known secret redacted from every record."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Iterable

from bridge.config import Config
from bridge.controls import escape_controls

REDACTED = "***"
# Whatever the secret list misses, never let `secret=`/`password=` values, URL passwords or
# Authorization header values through. Every pattern is linear in the message length: each
# repetition is bounded and each match can only start where the previous character cannot
# continue it, so a megabyte of `aaaa…` costs one scan (an unanchored `[a-z0-9+.-]*://` was
# quadratic there and held the GIL for minutes on one hostile user name).
_KEY_VALUE_RE = re.compile(r"(?i)\b(secret|password|passwd|signing_secret)([ \t]{0,8}[:=][ \t]{0,8})(\S{1,512})")
_URL_PASSWORD_RE = re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,31}://[^:/@\s]{1,256}:)([^@\s/]{1,256})(@)")
_AUTH_HEADER_RE = re.compile(r"(?i)\b((?:proxy-)?authorization\W{1,8}(?:basic|digest|bearer|negotiate)\s{1,4})"
                             r"[^\s'\"\],]{1,8192}")
# A record longer than this is cut (after redaction): one hostile value must not fill the journal.
MAX_MESSAGE_CHARS = 8192
def config_secrets(config: Config) -> list[str]:
    """Every secret value a Config holds: AMI secrets, SOAP passwords, subscriber passwords and
    signing secrets, and the database URL's password."""
    from sqlalchemy.engine import make_url

    found = [a.secret for a in config.ami]
    if config.soap is not None:
        found += list(config.soap.users.values())
    for sub in config.subscribers:
        found += [sub.password, sub.signing_secret]
    try:
        found.append(make_url(config.database.url).password)
    except Exception:  # an invalid URL was already reported by the config check
        pass
    # Very short values would redact ordinary words; config check asks for real secrets anyway.
    return sorted({s for s in found if s and len(s) >= 3}, key=len, reverse=True)


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message so that no known secret survives."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._secret_re = re.compile("|".join(map(re.escape, values))) if values else None

    def redact(self, text: str) -> str:
        if self._secret_re is not None:
            text = self._secret_re.sub(REDACTED, text)
        text = _URL_PASSWORD_RE.sub(rf"\1{REDACTED}\3", text)
        text = _AUTH_HEADER_RE.sub(rf"\1{REDACTED}", text)
        return _KEY_VALUE_RE.sub(rf"\1\2{REDACTED}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        # Cut before redacting too, so a huge message costs a bounded scan; the second cut is far
        # from the first, so a secret split by the first cut never survives in part.
        message = self.redact(message[:4 * MAX_MESSAGE_CHARS])
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[:MAX_MESSAGE_CHARS]}… [cut at {MAX_MESSAGE_CHARS} characters]"
        # One record is one line: a peer's CR/LF cannot forge another (tracebacks keep theirs).
        record.msg, record.args = escape_controls(message), None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and exception text if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (),
                  stream=None) -> RedactingFilter:
    """Replace the root logger's handlers with one stderr handler that redacts `secrets`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    redactor = RedactingFilter(secrets)
    handler.addFilter(redactor)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Alembic says at INFO which of its plugins it loaded and which SQL dialect it found, on every
    # schema check: noise for an admin. Its warnings stay; -v (DEBUG) shows everything.
    logging.getLogger("alembic").setLevel(logging.NOTSET if level.upper() == "DEBUG" else logging.WARNING)
    return redactor


def setup_logging_for(config: Config, level_override: str | None = None) -> RedactingFilter:
    return setup_logging(level_override or config.logging.level, config.logging.format,
                         config_secrets(config))
