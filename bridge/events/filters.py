"""One subscriber's filter: mode, event names, exclusions, headers and a ROM-Asterisk-style regex."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from bridge.config import SubscriberConfig
from bridge.errors import ConfigError
from bridge.events.literals import is_plain, required_literal
from bridge.events.model import LINK, NORMALIZED, RAW

MODES = (RAW, NORMALIZED, "both")


class FilterableEvent(Protocol):
    """What a filter reads: BridgeEvent, or the pipeline's cheap raw view of a Message."""

    server: str
    kind: str
    name: str
    text: str

    def get(self, name: str, default: str | None = None) -> str | None: ...


@dataclass(frozen=True)
class HeaderRule:
    """`headers = { Exten = "902" }` is an exact match; `"/^9\\d\\d$/"` a regex search."""

    name: str
    exact: str | None
    regex: re.Pattern | None

    def matches(self, event: FilterableEvent) -> bool:
        value = event.get(self.name)
        if value is None:
            return False
        return value == self.exact if self.regex is None else self.regex.search(value) is not None


def _compile(pattern: str, where: str, subscriber: str) -> re.Pattern:
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error as exc:
        at = f" at {exc.pos}" if exc.pos is not None else ""
        problem = f"{where}: {exc.msg}{at} (subscriber {subscriber!r})"
        raise ConfigError(problem, [problem]) from exc


@dataclass(frozen=True)
class SubscriberFilter:
    """All conditions of one subscriber, AND-combined; `matches` applies them all.

    `literal` is a string any `filter` match must contain (see literals.py), which the Router
    uses to skip the regex on most events; `plain` filters are substring matches.
    """

    name: str
    index: int
    kinds: frozenset[str]
    events: frozenset[str] | None            # lower-case names; None: every event
    exclude: frozenset[str]
    headers: tuple[HeaderRule, ...]
    pattern: str | None
    regex: re.Pattern | None
    plain: bool
    literal: str | None
    spelled: tuple[str, ...] = ()            # event names as configured (for AMI Filter lines)

    @classmethod
    def compile(cls, cfg: SubscriberConfig, index: int = 0) -> "SubscriberFilter":
        where = f"subscriber[{index}]"
        if cfg.mode not in MODES:
            raise ConfigError(f"{where}.mode: {cfg.mode!r} is not one of {', '.join(MODES)}")
        kinds = frozenset((RAW, NORMALIZED) if cfg.mode == "both" else (cfg.mode,))
        if NORMALIZED in kinds:   # the bridge's own events: a normalized subscriber hears the link too
            kinds |= {LINK}
        rules = []
        for header, value in cfg.headers.items():
            if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
                rules.append(HeaderRule(header, None, _compile(value[1:-1], f"{where}.headers.{header}", cfg.name)))
            else:
                rules.append(HeaderRule(header, value, None))
        pattern = cfg.filter or None
        regex = _compile(pattern, f"{where}.filter", cfg.name) if pattern else None
        plain = bool(pattern) and is_plain(pattern)
        return cls(
            name=cfg.name, index=index, kinds=kinds,
            events=frozenset(e.lower() for e in cfg.events) if cfg.events else None,
            exclude=frozenset(e.lower() for e in cfg.exclude_events), headers=tuple(rules),
            pattern=pattern, regex=regex, plain=plain,
            literal=required_literal(pattern) if pattern else None,
            spelled=tuple(cfg.events) + tuple(cfg.exclude_events))

    def accepts_name(self, kind: str, name_lower: str) -> bool:
        """The conditions that depend only on the event's kind and name (cacheable).
        LinkDown/LinkUp also reach a raw subscriber that names them in `events`."""
        if kind not in self.kinds and not (kind == LINK and self.events is not None):
            return False
        return name_lower not in self.exclude and (self.events is None or name_lower in self.events)

    def matches_text(self, text: str) -> bool:
        if self.pattern is None:
            return True
        if self.plain:
            return self.pattern in text
        return self.regex.search(text) is not None

    def matches_headers(self, event: FilterableEvent) -> bool:
        return all(rule.matches(event) for rule in self.headers)

    def matches(self, event: FilterableEvent) -> bool:
        """Every condition, without the Router's shortcuts (the reference the Router must agree with)."""
        return (self.accepts_name(event.kind, event.name.lower()) and self.matches_text(event.text)
                and self.matches_headers(event))
