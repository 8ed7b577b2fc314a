"""Routes each event to the subscribers whose filters pass it, in one pass for all of them.

Per event: a cached plan by (kind, event name) names the subscribers whose mode, `events` and
`exclude_events` admit it; one LiteralScanner pass finds which required literals occur in the
text; only those subscribers' regexes run (literals.py). Most events reach no subscriber and
cost one dict lookup and one regex scan.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable, Sequence

from bridge.config import SubscriberConfig
from bridge.errors import ConfigError
from bridge.events.filters import FilterableEvent, SubscriberFilter
from bridge.events.link import LINK_EVENT_NAMES
from bridge.events.literals import LiteralScanner
from bridge.events.model import RAW

# Unique event names an attacker could invent must not grow the plan cache without bound.
MAX_PLANS = 4096

# Raw events the bridge itself needs whatever the subscribers say, an AMI `Filter` must never hide
# them: the PBX's own lifecycle, and what the SOAP side keeps current from the stream:
# OriginateResponse (GetOriginateStatus) and ExtensionStatus / DeviceStateChange (the
# GetExtensionState cache). The call model's events come from the wiring (Router's
# `needed_events`, runtime.py passes bridge.calls.CALL_EVENT_NAMES): events/ does not import calls/.
SERVICE_EVENTS = ("DeviceStateChange", "ExtensionStatus", "FullyBooted", "OriginateResponse", "Shutdown")


@dataclass(frozen=True)
class _Plan:
    """Subscribers an event name admits, grouped by how their regex is decided."""

    no_regex: tuple[SubscriberFilter, ...]
    unindexed: tuple[SubscriberFilter, ...]
    by_literal: dict[str, tuple[SubscriberFilter, ...]]


class Router:
    """Subscribers' filters, compiled once; `route(event)` returns the names that want it."""

    def __init__(self, subscribers: Sequence[SubscriberConfig], needed_events: Iterable[str] = ()) -> None:
        self.needed_events = tuple(sorted(set(SERVICE_EVENTS) | set(needed_events)))
        filters, problems = [], []
        for index, cfg in enumerate(subscribers):
            try:
                filters.append(SubscriberFilter.compile(cfg, index))
            except ConfigError as exc:
                problems.extend(exc.problems or [exc.message])
        if problems:
            raise ConfigError(problems=problems)
        self.filters: tuple[SubscriberFilter, ...] = tuple(filters)
        self._enabled = {cfg.name: cfg.enabled for cfg in subscribers}
        self._scanner = LiteralScanner(f.literal for f in filters if f.literal and f.pattern)
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._lock = threading.Lock()

    # -- listening switch ---------------------------------------------------------------------

    def set_enabled(self, name: str, enabled: bool) -> None:
        """ROM-Asterisk's listening switch: stop or resume one subscriber, AMI link untouched."""
        if name not in self._enabled:
            raise KeyError(f"no subscriber named {name!r}")
        self._enabled[name] = bool(enabled)

    def is_enabled(self, name: str) -> bool:
        return self._enabled[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.filters)

    # -- routing ------------------------------------------------------------------------------

    def _plan(self, kind: str, name_lower: str) -> _Plan:
        admitted = [f for f in self.filters if f.accepts_name(kind, name_lower)]
        by_literal: dict[str, list[SubscriberFilter]] = {}
        for f in admitted:
            if f.pattern and f.literal:
                by_literal.setdefault(f.literal, []).append(f)
        plan = _Plan(tuple(f for f in admitted if not f.pattern),
                     tuple(f for f in admitted if f.pattern and not f.literal),
                     {lit: tuple(fs) for lit, fs in by_literal.items()})
        with self._lock:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            self._plans[(kind, name_lower)] = plan
        return plan

    def route(self, event: FilterableEvent) -> list[str]:
        """Names of the enabled subscribers that accept `event`, in configuration order."""
        key = (event.kind, event.name.lower())
        plan = self._plans.get(key) or self._plan(*key)
        hits: list[SubscriberFilter] = []
        for f in plan.no_regex:
            if not f.headers or f.matches_headers(event):
                hits.append(f)
        text = event.text
        for f in plan.unindexed:
            if f.regex.search(text) is not None and f.matches_headers(event):
                hits.append(f)
        if plan.by_literal:
            for literal in self._scanner.scan(text):
                for f in plan.by_literal.get(literal, ()):
                    if (f.plain or f.regex.search(text) is not None) and f.matches_headers(event):
                        hits.append(f)
        if not hits:
            return []
        enabled = self._enabled
        if len(hits) > 1:
            hits.sort(key=lambda f: f.index)
        return [f.name for f in hits if enabled[f.name]]

    # -- AMI-side filtering -------------------------------------------------------------------

    def ami_filters(self) -> list[str]:
        """Values for AMI `Filter` actions (Asterisk 13+, manager.c: POSIX extended regex on
        the whole event text) so the PBX sends less. Local filtering stays authoritative, so
        these only ever drop events no subscriber, no call model and no SOAP wait can use:

        - every subscriber names its raw events (`events`, or mode normalized): allow-list of
          those plus the needed events;
        - otherwise: deny-list of names every subscriber excludes, minus the needed events.

        `[^A-Za-z]` ends the name (the CR after it) so `Event: Dial` cannot also catch
        `DialBegin`; unlike `[[:space:]]` or `\\s` it means the same to glibc, musl and
        Python (the simulator). Disabled
        subscribers count as listening: switching one back on needs no AMI restart.
        """
        raw_sets = [self._raw_names(f) for f in self.filters]
        if all(s is not None for s in raw_sets):
            names = set().union(*raw_sets) | {n.lower() for n in self.needed_events}
            return [f"Event: {n}[^A-Za-z]" for n in self._spell(names)]
        denied = set.intersection(*(set(f.exclude) for f in self.filters)) if self.filters else set()
        denied -= {n.lower() for n in self.needed_events}
        return [f"!Event: {n}[^A-Za-z]" for n in self._spell(denied)]

    @staticmethod
    def _raw_names(f: SubscriberFilter) -> set[str] | None:
        if RAW not in f.kinds:
            return set()
        if f.events is None:
            return None
        # LinkDown/LinkUp are the bridge's own: no AMI Filter line can bring them.
        return set(f.events) - f.exclude - {n.lower() for n in LINK_EVENT_NAMES}

    def _spell(self, names: Iterable[str]) -> list[str]:
        """Asterisk matches the filter case-sensitively: use the configured/known spelling."""
        known = {n.lower(): n for n in self.needed_events}
        for f in self.filters:
            for n in f.spelled:
                if n.lower() not in known or known[n.lower()].islower():
                    known[n.lower()] = n
        return sorted(known.get(n, n) for n in names)

