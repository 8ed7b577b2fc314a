"""Can a subscriber's filters ever match? Static checks of mode, events, exclude_events, filter, headers.

A subscriber that can never match delivers nothing while every status looks fine (`filtered`
grows, nothing else), so `config check`, `check` and `run` refuse it, naming the key; what is only
unlikely is a warning. It lives here, above the config loader, because it needs the call model's
vocabulary; the CLI hands `analyse` to `load_config(check_subscriber=…)`. The knowledge used: the
normalized events and the headers each carries (bridge.calls.model), and the words only raw AMI
text contains. Raw events are open-ended (UserEvent can carry any header), so for raw subscribers
most findings are warnings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bridge.calls.model import (CALL_EVENT_NAMES, NORMALIZED_EVENTS, NORMALIZED_HEADERS,
                                NORMALIZED_VALUES, REASONS)
from bridge.config import SubscriberConfig
from bridge.events.link import LINK_DOWN, LINK_EVENT_NAMES, LINK_UP
from bridge.events.literals import branch_literals

# LinkDown/LinkUp (bridge.events.link) reach normalized subscribers, and raw ones that name them.
LINK_HEADERS = {LINK_DOWN: ("Event", "Server", "Reason", "Since"),
                LINK_UP: ("Event", "Server", "AsteriskVersion", "AMIVersion", "DownSince", "DownSeconds",
                          "LostCalls")}
_HEADERS = {**NORMALIZED_HEADERS, **LINK_HEADERS}

# Raw AMI vocabulary a normalized event's text never contains: event names and header names of
# the events the call model reads (Asterisk 11 and 12+), plus their usual companions.
RAW_WORDS = frozenset(CALL_EVENT_NAMES) | {
    "SubEvent", "Begin", "Link", "Unlink", "Destination", "DestUniqueID", "DestChannel", "Dialstring",
    "DialStatus", "Bridgestate", "BridgeUniqueid", "BridgeType", "ChannelState", "ChannelStateDesc",
    "ConnectedLineNum", "ConnectedLineName", "Linkedid", "Privilege", "Context", "Exten", "Priority",
    "VarSet", "Variable", "Cause-txt", "RTCPSent", "RTCPReceived", "Cdr", "DeviceStateChange",
    "ExtensionStatus", "PeerStatus", "OriginateResponse", "AgentCalled", "AgentConnect",
    "AgentComplete", "QueueMemberStatus", "MusicOnHoldStart", "Hold", "Unhold"}
_NORMALIZED_TEXT = "\n".join(
    list(_HEADERS) + [h for hs in _HEADERS.values() for h in hs]
    + [v for vs in NORMALIZED_VALUES.values() for v in vs] + list(REASONS) + ["blind", "attended"])
_NORMALIZED_HEADER_NAMES = {h.lower() for hs in NORMALIZED_HEADERS.values() for h in hs}
_NORMALIZED_NAMES = {n.lower() for n in NORMALIZED_EVENTS}
_LINK_NAMES = {n.lower() for n in LINK_EVENT_NAMES}
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z-]{2,}")


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)    # can never match: refuse
    warnings: list[str] = field(default_factory=list)  # unlikely: say so


def raw_only(literal: str) -> bool:
    """A literal only raw AMI text contains: a word of RAW_WORDS (or part of one), and not
    found in any normalized event's names, headers or values."""
    if literal in _NORMALIZED_TEXT:
        return False
    for word in _WORD_RE.findall(literal):
        if word not in _NORMALIZED_TEXT and any(word in raw for raw in RAW_WORDS):
            return True
    return False


def analyse(cfg: SubscriberConfig, path: str) -> Findings:
    found = Findings()
    kinds = {"raw": {"raw"}, "normalized": {"normalized"}, "both": {"raw", "normalized"}}.get(cfg.mode)
    if kinds is None:
        return found  # the mode itself is reported by config_checks
    events = _check_events(cfg, kinds, path, found)
    if cfg.filter and kinds == {"normalized"}:
        _check_filter(cfg.filter, path, found)
    _check_headers(cfg, kinds, events, path, found)
    return found


def _check_events(cfg: SubscriberConfig, kinds: set[str], path: str, found: Findings) -> set[str] | None:
    """The normalized event names the subscriber can still receive (None: any)."""
    wanted = {e.lower() for e in cfg.events} - {e.lower() for e in cfg.exclude_events}
    if cfg.events and not wanted:
        found.errors.append(f"{path}.exclude_events: excludes every name in events, so nothing "
                            "can match")
        return set()
    if not cfg.events:
        return None
    normalized = [e for e in cfg.events if e.lower() in _NORMALIZED_NAMES]
    raw = [e for e in cfg.events if e.lower() not in _NORMALIZED_NAMES | _LINK_NAMES]
    allowed = ", ".join(NORMALIZED_EVENTS + LINK_EVENT_NAMES)
    if kinds == {"normalized"} and raw:
        message = (f"{path}.events: {', '.join(repr(e) for e in raw)} "
                   f"{'is a raw AMI event' if len(raw) == 1 else 'are raw AMI events'}; mode "
                   f"\"normalized\" only receives {allowed} (use mode \"raw\" or \"both\" for AMI events)")
        (found.warnings if normalized else found.errors).append(
            message if not normalized else message + "; those names never match")
    if kinds == {"raw"} and normalized and not raw:
        found.errors.append(f"{path}.events: {', '.join(repr(e) for e in normalized)} "
                            f"{'is a normalized event' if len(normalized) == 1 else 'are normalized events'}; "
                            "mode \"raw\" never receives them (use mode \"normalized\" or \"both\")")
    elif kinds == {"raw"} and normalized:
        found.warnings.append(f"{path}.events: {', '.join(repr(e) for e in normalized)} never match "
                              "in mode \"raw\" (normalized event names)")
    return {e.lower() for e in normalized + [e for e in cfg.events if e.lower() in _LINK_NAMES]} & wanted


def _check_filter(pattern: str, path: str, found: Findings) -> None:
    branches = branch_literals(pattern)
    if not branches:
        return
    impossible = [(text, sorted(lit for lit in lits if raw_only(lit)))
                  for text, lits in branches]
    impossible = [(text, lits) for text, lits in impossible if lits]
    if not impossible:
        return
    details = "; ".join(f"{text!r} needs {', '.join(repr(x) for x in lits)}" for text, lits in impossible)
    if len(impossible) == len(branches):
        found.errors.append(f"{path}.filter: can never match a normalized event ({details}: "
                            "raw AMI text only); write it against the normalized text "
                            "(e.g. 'CallRinging.{1,}?Extension: 902') or use mode \"raw\"")
    else:
        found.warnings.append(f"{path}.filter: parts that never match a normalized event: {details}")


def _check_headers(cfg: SubscriberConfig, kinds: set[str], events: set[str] | None, path: str,
                   found: Findings) -> None:
    carried = {h.lower(): h for name, hs in _HEADERS.items()
               if events is None or name.lower() in events for h in hs}
    for header, value in cfg.headers.items():
        key = header.lower()
        where = f"{path}.headers.{header}"
        if kinds == {"normalized"} and key not in carried:
            which = "none of the events in events carries" if events is not None else "no normalized event carries"
            found.errors.append(f"{where}: {which} this header (normalized headers: "
                                f"{', '.join(sorted(set(carried.values())))})")
            continue
        if kinds == {"raw"} and key in _NORMALIZED_HEADER_NAMES and not any(
                header.lower() == w.lower() for w in RAW_WORDS | {"Channel", "Uniqueid", "Extension",
                                                                  "CallerIDNum", "CallerIDName", "Queue",
                                                                  "Cause", "Event", "State"}):
            found.warnings.append(f"{where}: raw AMI events do not usually carry this header "
                                  "(a normalized one: use mode \"normalized\" or \"both\")")
        canonical = carried.get(key) or next((h for h in NORMALIZED_VALUES if h.lower() == key), None)
        choices = NORMALIZED_VALUES.get(canonical or "")
        is_regex = len(value) >= 2 and value.startswith("/") and value.endswith("/")
        if kinds == {"normalized"} and choices and not is_regex and value not in choices:
            found.errors.append(f"{where}: {value!r} is never a value of {canonical} "
                                f"(one of {', '.join(c for c in choices if c)})")
