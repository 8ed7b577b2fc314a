"""Expected call stories written by hand, and the comparison with what the ERP sink received."""

from __future__ import annotations

from dataclasses import dataclass, field

RING, ANSWER, END, XFER = "CallRinging", "CallAnswered", "CallEnded", "CallTransferred"


@dataclass(frozen=True)
class Ev:
    """One expected event about `extension`: its State, the call's CallState and, for CallEnded,
    Reason, AnsweredBy and a Billsec range."""

    event: str
    extension: str
    state: str
    call_state: str
    reason: str = ""
    answered_by: str = ""
    billsec: tuple[int, int] = (0, 0)
    target: str = ""
    direction: str | None = None     # when it differs from the story's (see `before_trunk`)
    together: bool = False           # rings at the same moment as its neighbours (see `at_once`)


def ring(ext: str, call_state: str = "ringing") -> Ev:
    return Ev(RING, ext, "ringing", call_state)


def answer(ext: str, call_state: str = "answered") -> Ev:
    return Ev(ANSWER, ext, "answered", call_state, answered_by=ext)


def left(ext: str, reason: str, call_state: str, answered_by: str = "",
         billsec: tuple[int, int] = (0, 0)) -> Ev:
    """A party leaves while the call goes on (CallState still ringing/answered); AnsweredBy is
    who has the call at that moment, Billsec the party's own talk time."""
    return Ev(END, ext, "ended", call_state, reason, answered_by, billsec)


def end(ext: str, reason: str, answered_by: str = "", billsec: tuple[int, int] = (0, 0)) -> Ev:
    """The call's final CallEnded."""
    return Ev(END, ext, "ended", "ended", reason, answered_by, billsec)


def xfer(ext: str, target: str) -> Ev:
    return Ev(XFER, ext, "answered", "answered", target=target)


def at_once(*events: Ev) -> tuple[Ev, ...]:
    """Events of the same instant (members of a ring group/queue rung together, an agent leaving
    as the transfer target starts ringing): their order is Asterisk's scheduling, not the story."""
    return tuple(Ev(**{**e.__dict__, "together": True}) for e in events)


def before_trunk(ev: Ev) -> Ev:
    """An operator's own events before the number left through the trunk: still internal."""
    return Ev(**{**ev.__dict__, "direction": "internal"})


@dataclass(frozen=True)
class Story:
    caller: str
    callee: str
    direction: str
    events: tuple[Ev, ...]
    caller_name: str | None = None       # checked when given
    queue: str | None = None
    originated: bool = False             # placed by ClickToCall/Originate: events carry OriginateId


def story(caller: str, callee: str, direction: str, *events: Ev | tuple[Ev, ...], **kw) -> Story:
    flat: list[Ev] = []
    for e in events:
        flat.extend(e if isinstance(e, tuple) else (e,))
    return Story(caller, callee, direction, tuple(flat), **kw)


def _align(expected: tuple[Ev, ...], got: list[dict]) -> list[dict]:
    """`got` with each run of `together` events put in the expected order, when the run holds
    exactly the expected (event, extension) pairs."""
    got = list(got)
    i = 0
    while i < len(expected):
        if not expected[i].together:
            i += 1
            continue
        j = i
        while j < len(expected) and expected[j].together:
            j += 1
        want = [(e.event, e.extension) for e in expected[i:j]]
        part = got[i:j]
        if sorted(want) == sorted((e.get("name"), e.get("Extension")) for e in part):
            got[i:j] = sorted(part, key=lambda e: want.index((e.get("name"), e.get("Extension"))))
        i = j
    return got


@dataclass
class Received:
    call_id: str
    events: list[dict] = field(default_factory=list)


def line(e: dict) -> str:
    """One received event, compactly (the form the report and failure messages use)."""
    bits = [e.get("name", ""), e.get("Extension", ""), f"{e.get('State', '')}/{e.get('CallState', '')}"]
    if e.get("name") == END:
        bits.append(f"reason={e.get('Reason', '')} by={e.get('AnsweredBy', '')} billsec={e.get('Billsec', '')}")
    if e.get("name") == XFER:
        bits.append(f"target={e.get('TransferTarget', '')}")
    bits.append(f"{e.get('CallerIDNum', '')}→{e.get('CalleeNum', '')} {e.get('Direction', '')}")
    return " ".join(bits)


def mismatches(expected: Story, got: list[dict], originate_id: str | None = None) -> list[str]:
    """Every way `got` differs from `expected` (empty: the story is true)."""
    problems: list[str] = []
    got = _align(expected.events, got)
    if len(got) != len(expected.events):
        problems.append(f"{len(got)} events, expected {len(expected.events)}")
    for i, (want, e) in enumerate(zip(expected.events, got)):
        checks = {
            "name": want.event, "Extension": want.extension, "State": want.state,
            "CallState": want.call_state, "CallerIDNum": expected.caller, "CalleeNum": expected.callee,
            "Direction": want.direction or expected.direction,
        }
        if want.event == END:
            checks.update(Reason=want.reason, AnsweredBy=want.answered_by)
        if want.event == ANSWER:
            checks["AnsweredBy"] = want.answered_by
        if want.event == XFER:
            checks["TransferTarget"] = want.target
        if expected.caller_name is not None:
            checks["CallerIDName"] = expected.caller_name
        if expected.queue is not None and want.extension != expected.caller:
            checks["Queue"] = expected.queue   # from the members' events on
        if expected.originated:
            checks["OriginateId"] = originate_id or "?"
            if e.get("__call__", {}).get("OriginateId") != originate_id:
                problems.append(f"event {i + 1}: PushEvent <call> lacks OriginateId {originate_id}")
        for key, value in checks.items():
            if e.get(key, "") != value:
                problems.append(f"event {i + 1} ({want.event} {want.extension}): {key}={e.get(key, '')!r}, "
                                f"expected {value!r}")
        if want.event == END:
            lo, hi = want.billsec
            billsec = int(e.get("Billsec") or -1)
            if not lo <= billsec <= hi:
                problems.append(f"event {i + 1} (CallEnded {want.extension}): Billsec={billsec}, "
                                f"expected {lo}..{hi}")
    return problems
