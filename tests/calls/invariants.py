"""Invariants every normalized call story must keep, whatever the scenario, version or transport.

A *story* is the list of normalized events (CallRinging, CallAnswered, CallTransferred,
CallEnded) one call produced, in delivery order, each as a dict of its normalized fields — the
`Key: Value` headers of the event including `Event` (what `dict(bridge_event.headers)` gives and
what the ERP receives in PushEvent's `call`/`headers`). BridgeEvent objects are accepted too.

Terms used below:
- A *party* is the `Extension` an event is about (Local ;1/;2 halves are already one party).
- The *caller's own leg*: an event whose `Extension` equals its `CallerIDNum` but not its
  `CalleeNum`. An originated call (ClickToCall, Originate) rings and answers the operator's phone
  first; that is the call being set up, not the call being answered, so it never counts as "a
  party answered". The number called is always a party, even when the caller ID shown on it is
  its own number (an Originate of Local/100 into an application with `CallerID: <100>`).
- *Answered*: some party other than the caller's own leg has a CallAnswered.
- The *final* CallEnded: the one with `CallState: ended`.
- The *winner*: the party of the first CallAnswered that is not the caller's own leg.

Invariants (check_story raises AssertionError naming the broken one and the event):
 1. one call: every event carries the same `CallId`; `Event` is one of the four names and
    `State` matches it (ringing / answered / ended; CallTransferred: the party's state).
 2. final: exactly one CallEnded has `CallState: ended`, and it is the story's last event
    (no event of the call after its final CallEnded).
 3. call state: `CallState` never goes back (ringing → answered → ended).
 4. answered: the final `Reason` is `answered` if and only if the call was answered
    (`lost-during-disconnect` excepted: a call the bridge lost sight of keeps that reason
    whether or not it was answered); when answered, `AnsweredBy` is non-empty, names a
    party whose CallAnswered came before; when not answered, `AnsweredBy` is empty. Every
    CallAnswered has `AnsweredBy` equal to its own `Extension`.
 5. billing: on every CallEnded `Duration` and `Billsec` are whole seconds ≥ 0 and
    `Billsec` ≤ `Duration`; `Billsec` > 0 only when answered — on the final CallEnded only
    if the call was answered, on a party's own CallEnded only if that party's `Reason` is
    `answered`/`transferred` and the call was answered before it.
 6. closure: every party that got a CallRinging later gets a CallAnswered or a CallEnded
    (the final one counts: its `Extension` is the party it is about).
 7. causal order:
    a. a party's CallAnswered comes after a CallRinging of that party (the ERP opens the
       caller's card on CallRinging; a party that answers without ringing still rings first),
       and a party answers at most once per ringing;
    b. no party other than the winner whose latest CallRinging came before the winner's
       CallAnswered gets a CallAnswered after the winner's (they lost the race: they end
       `answered-elsewhere`, they do not answer later);
    c. a party that ends `answered-elsewhere` rang before, and some other party's CallAnswered
       lies between its latest CallRinging and that CallEnded (the race it lost happened while
       it rang — a loser's CallRinging after the winner's CallAnswered is out of order).

check_stories() splits an interleaved stream of several calls by `CallId` (keeping each call's
order) and checks each.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

RINGING, ANSWERED, TRANSFERRED, ENDED = "CallRinging", "CallAnswered", "CallTransferred", "CallEnded"
NAMES = (RINGING, ANSWERED, TRANSFERRED, ENDED)
STATE_OF = {RINGING: ("ringing",), ANSWERED: ("answered",), ENDED: ("ended",),
            TRANSFERRED: ("ringing", "answered")}
CALL_STATE_RANK = {"ringing": 0, "answered": 1, "ended": 2}
LOST = "lost-during-disconnect"

Story = list[dict[str, str]]


def as_story(events: Iterable[Any]) -> Story:
    """Dicts of normalized fields, whether given BridgeEvents or mappings."""
    out = []
    for e in events:
        if isinstance(e, Mapping):
            # What an ERP sink parsed from PushEvent: `name` plus every header (scalars only).
            d = {str(k): str(v) for k, v in e.items() if isinstance(v, (str, int))}
            if "Event" not in d and "name" in d:
                d["Event"] = d["name"]
            out.append(d)
        else:
            out.append({k: v for k, v in e.headers})
    return out


def _describe(i: int, e: Mapping[str, str]) -> str:
    keys = ("Extension", "State", "CallState", "Reason", "AnsweredBy", "Billsec", "Duration")
    fields = ", ".join(f"{k}={e[k]}" for k in keys if k in e)
    return f"#{i} {e.get('Event', '?')}({fields})"


def _render(story: Story) -> str:
    return "\n".join("   " + _describe(i, e) for i, e in enumerate(story))


def _fail(rule: str, story: Story, detail: str) -> None:
    raise AssertionError(f"call story breaks invariant {rule}: {detail}\nstory:\n{_render(story)}")


def _own_leg(e: Mapping[str, str]) -> bool:
    return e.get("Extension", "") == e.get("CallerIDNum", "") != e.get("CalleeNum", "")


def _seconds(rule: str, story: Story, i: int, e: Mapping[str, str], key: str) -> int:
    value = e.get(key, "")
    if not value.isdigit():
        _fail(rule, story, f"{_describe(i, e)}: {key} {value!r} is not whole seconds >= 0")
    return int(value)


def check_story(events: Iterable[Any]) -> None:
    """Raise AssertionError (naming the invariant and showing the story) unless all hold."""
    story = as_story(events)
    if not story:
        _fail("2 (final)", story, "empty story: no CallEnded")
    _check_shape(story)
    final = _check_final(story)
    _check_call_state(story)
    answers = [i for i, e in enumerate(story) if e["Event"] == ANSWERED and not _own_leg(e)]
    _check_answered(story, final, answers)
    _check_billing(story, answers)
    _check_closure(story)
    _check_causal(story, answers)


def check_stories(events: Iterable[Any]) -> int:
    """Check every call of an interleaved stream; returns how many calls were checked."""
    calls: dict[str, Story] = {}
    for e in as_story(events):
        calls.setdefault(e.get("CallId", ""), []).append(e)
    for story in calls.values():
        check_story(story)
    return len(calls)


def _check_shape(story: Story) -> None:
    ids = {e.get("CallId") for e in story}
    if len(ids) != 1:
        _fail("1 (one call)", story, f"events of several calls mixed: CallId {sorted(map(str, ids))}")
    for i, e in enumerate(story):
        name = e.get("Event")
        if name not in NAMES:
            _fail("1 (one call)", story, f"#{i}: {name!r} is not a normalized call event")
        if e.get("State") not in STATE_OF[name]:
            _fail("1 (one call)", story, f"{_describe(i, e)}: State should be {'/'.join(STATE_OF[name])}")


def _check_call_state(story: Story) -> None:
    rank = 0
    for i, e in enumerate(story):
        now = CALL_STATE_RANK.get(e.get("CallState", ""))
        if now is None:
            _fail("3 (call state)", story, f"{_describe(i, e)}: unknown CallState")
        if now < rank:
            _fail("3 (call state)", story, f"{_describe(i, e)}: CallState went back")
        rank = now


def _check_final(story: Story) -> int:
    finals = [i for i, e in enumerate(story) if e.get("CallState") == "ended"]
    if not finals:
        _fail("2 (final)", story, "no CallEnded with CallState: ended")
    for i in finals:
        if story[i]["Event"] != ENDED:
            _fail("2 (final)", story, f"{_describe(i, story[i])}: only CallEnded may say CallState: ended")
    if len(finals) > 1:
        _fail("2 (final)", story, f"{len(finals)} final CallEnded (#{', #'.join(map(str, finals))}), want one")
    if finals[0] != len(story) - 1:
        late = story[finals[0] + 1]
        _fail("2 (final)", story, f"{_describe(finals[0] + 1, late)} comes after the final CallEnded")
    return finals[0]


def _check_answered(story: Story, final: int, answers: list[int]) -> None:
    rule = "4 (answered)"
    for i, e in enumerate(story):
        if e["Event"] == ANSWERED and e.get("AnsweredBy") != e.get("Extension"):
            _fail(rule, story, f"{_describe(i, e)}: AnsweredBy is not the party that answered")
    end = story[final]
    reason, by = end.get("Reason", ""), end.get("AnsweredBy", "")
    if reason == LOST:
        return
    if reason == "answered" and not answers:
        _fail(rule, story, "Reason: answered but no party (besides the caller's own leg) answered")
    if answers and reason != "answered":
        _fail(rule, story, f"{_describe(answers[0], story[answers[0]])} answered, but the call ends "
                           f"Reason: {reason}")
    if answers and not by:
        _fail(rule, story, "the call was answered but the final CallEnded has an empty AnsweredBy")
    if answers and not any(story[i]["Extension"] == by for i in answers):
        _fail(rule, story, f"AnsweredBy={by} but no CallAnswered of {by} came before")
    if not answers and by:
        _fail(rule, story, f"AnsweredBy={by} on a call nobody answered")


def _check_billing(story: Story, answers: list[int]) -> None:
    rule = "5 (billing)"
    for i, e in enumerate(story):
        if e["Event"] != ENDED:
            continue
        duration = _seconds(rule, story, i, e, "Duration")
        billsec = _seconds(rule, story, i, e, "Billsec")
        if billsec > duration:
            _fail(rule, story, f"{_describe(i, e)}: Billsec > Duration")
        if billsec == 0:
            continue
        if not any(a < i for a in answers):
            _fail(rule, story, f"{_describe(i, e)}: Billsec > 0 but nobody had answered")
        if e.get("CallState") != "ended" and e.get("Reason") not in ("answered", "transferred"):
            _fail(rule, story, f"{_describe(i, e)}: Billsec > 0 for a party that did not answer")


def _check_closure(story: Story) -> None:
    for i, e in enumerate(story):
        if e["Event"] != RINGING:
            continue
        party = e["Extension"]
        if not any(later["Event"] in (ANSWERED, ENDED) and later["Extension"] == party
                   for later in story[i + 1:]):
            _fail("6 (closure)", story, f"{_describe(i, e)}: {party} rang but never answered or ended")


def _latest_ring(story: Story, party: str, before: int) -> int | None:
    return next((j for j in range(before - 1, -1, -1)
                 if story[j]["Event"] == RINGING and story[j]["Extension"] == party), None)


def _check_causal(story: Story, answers: list[int]) -> None:
    rule = "7 (causal order)"
    answered_since_ring: set[str] = set()
    for i, e in enumerate(story):
        party = e["Extension"]
        if e["Event"] == RINGING:
            answered_since_ring.discard(party)
        elif e["Event"] == ANSWERED:
            if _latest_ring(story, party, i) is None:
                _fail(rule, story, f"{_describe(i, e)}: {party} answered without a CallRinging before")
            if party in answered_since_ring:
                _fail(rule, story, f"{_describe(i, e)}: {party} answered twice on one ringing")
            answered_since_ring.add(party)
    if answers:
        win = answers[0]
        winner = story[win]["Extension"]
        for i in answers[1:]:
            party = story[i]["Extension"]
            ring = _latest_ring(story, party, i)
            if party != winner and ring is not None and ring < win:
                _fail(rule, story, f"{_describe(i, story[i])}: {party} rang before the winner "
                                   f"{winner} answered (#{win}) and answered after it")
    for i, e in enumerate(story):
        if e["Event"] != ENDED or e.get("Reason") != "answered-elsewhere":
            continue
        party = e["Extension"]
        ring = _latest_ring(story, party, i)
        if ring is None:
            _fail(rule, story, f"{_describe(i, e)}: answered-elsewhere for {party}, which never rang")
        if not any(ring < a < i and story[a]["Extension"] != party for a in answers):
            _fail(rule, story, f"{_describe(i, e)}: answered-elsewhere, but no other party answered "
                               f"while {party} rang (#{ring}..#{i})")
