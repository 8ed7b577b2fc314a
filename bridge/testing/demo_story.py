"""What the demo prints: the PushEvent bodies its ERP sink received, told as call stories.

One line per delivered event (who rings, who answered, who left), one story line per call when
it ends (outcome, who answered, talk time), ClickToCall calls told as operator → number, link
changes, and re-deliveries (the same `id` arriving again) marked as such rather than counted twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, TextIO

from lxml import etree

from bridge import ns

_E = f"{{{ns.EVENTS}}}"
INDENT = " " * 10


@dataclass(frozen=True)
class Click:
    """A ClickToCall the demo placed through the SOAP service."""

    operator: str
    number: str
    originate_id: str

    @property
    def label(self) -> str:
        return f"ClickToCall {self.operator} → {self.number}"


@dataclass
class _Call:
    caller: str = ""
    callee: str = ""
    events: int = 0
    click: Click | None = None

    @property
    def parties(self) -> str:
        if self.click is not None:
            return self.click.label
        return f"{self.caller or '?'} → {self.callee or '?'}"


@dataclass(frozen=True)
class _Pushed:
    id: str
    name: str
    kind: str
    server: str
    headers: dict[str, str]

    def get(self, key: str) -> str:
        return self.headers.get(key) or ""


def _parse(body: bytes) -> _Pushed | None:
    try:
        push = etree.fromstring(body).find(f".//{_E}PushEvent")
    except etree.XMLSyntaxError:
        return None
    if push is None:
        return None
    headers = {h.get("name"): h.text or "" for h in push.iterfind(f"{_E}headers/{_E}header")}
    return _Pushed(push.findtext(f"{_E}id") or "", push.findtext(f"{_E}name") or "?",
                   push.findtext(f"{_E}kind") or "", push.findtext(f"{_E}server") or "", headers)


def _party(num: str, name: str) -> str:
    if not num:
        return ""
    return f"{num} ({name})" if name and name != num else num


@dataclass
class StoryPrinter:
    """Feed it the sink's receipts in arrival order (`drain`); clicks as the demo places them."""

    out: TextIO
    clock: Callable[[], datetime] = datetime.now
    delivered: int = 0        # distinct events (ids) the ERP received
    redeliveries: int = 0
    calls_ended: int = 0
    _receipts_seen: int = 0
    _ids: set[str] = field(default_factory=set)
    _calls: dict[str, _Call] = field(default_factory=dict)
    _pending_clicks: list[Click] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- input ---------------------------------------------------------------------------------

    def click_placed(self, click: Click) -> None:
        """Called by the demo's call generator right after ClickToCall returned."""
        with self._lock:
            self._pending_clicks.append(click)
            self._line(f"{'ClickToCall':<14} operator {click.operator} → {click.number}"
                       f"  (1C pressed it; originateId {click.originate_id})")

    @property
    def receipts_seen(self) -> int:
        return self._receipts_seen

    def drain(self, sink) -> None:
        with sink._lock:                    # the receipts list grows on the sink's threads
            receipts = list(sink.receipts)
        for receipt in receipts[self._receipts_seen:]:
            self.receipt(receipt.body, answered=receipt.answered)
        self._receipts_seen = len(receipts)

    def receipt(self, body: bytes, answered: str = "ok") -> None:
        pushed = _parse(body)
        with self._lock:
            if pushed is None:
                self._line("(the sink received something that is not a PushEvent)")
                return
            if pushed.id in self._ids:
                self.redeliveries += 1
                self._line(f"{'↻ re-delivery':<14} {pushed.name} {self._call_ref(pushed)}: same id "
                           f"{pushed.id[:8]}…, the ERP already has it (keep PushEvent idempotent on id)")
                return
            self._ids.add(pushed.id)
            self.delivered += 1
            if pushed.kind == "link":
                self._link(pushed)
            else:
                self._call_event(pushed)
            if answered != "ok":
                self._line(f"{INDENT}✗ the sink dropped its answer to this event on purpose: the bridge "
                           f"does not know it arrived and will send it again", stamp=False)

    # -- lines ---------------------------------------------------------------------------------

    def _line(self, text: str, stamp: bool = True) -> None:
        prefix = f"{self.clock():%H:%M:%S}  " if stamp else ""
        self.out.write(prefix + text + "\n")
        self.out.flush()

    def _call_ref(self, p: _Pushed) -> str:
        return f"[call {p.get('CallId')}]" if p.get("CallId") else f"[{p.server}]"

    def _link(self, p: _Pushed) -> None:
        if p.name == "LinkDown":
            self._line(f"{p.name:<14} {p.server} lost ({p.get('Reason')}): telephony unavailable")
            return
        version = f"Asterisk {p.get('AsteriskVersion') or '?'}"
        if not p.get("DownSeconds"):
            self._line(f"{p.name:<14} {p.server} connected (first time since the bridge started): {version}")
            return
        lost = p.get("LostCalls") or "?"
        self._line(f"{p.name:<14} {p.server} back after {p.get('DownSeconds')} s: {version}, "
                   f"{lost} call{'' if lost == '1' else 's'} lost meanwhile")

    def _call_event(self, p: _Pushed) -> None:
        call_id = p.get("CallId") or "?"
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(click=self._match_click(p))
        call.events += 1
        call.caller = call.caller or _party(p.get("CallerIDNum"), p.get("CallerIDName"))
        call.callee = call.callee or p.get("CalleeNum")
        who = p.get("Extension") or "?"
        what = {
            "CallRinging": f"{who} is ringing",
            "CallAnswered": f"{who} answered",
            "CallTransferred": f"{who} transferred the call to {p.get('TransferTarget') or '?'}",
        }.get(p.name)
        if what is None and p.name == "CallEnded":
            if p.get("CallState") == "ended":
                by = f", the {p.get('HangupBy')} hung up" if p.get("HangupBy") else ""
                what = f"{who}: call over ({p.get('Reason') or '?'}{by})"
            else:
                what = f"{who} is out of the call ({p.get('Reason') or '?'})"
        self._line(f"{p.name:<14} {what or who} — {call.parties}  [call {call_id}]")
        if p.name == "CallEnded" and p.get("CallState") == "ended":
            self._ended(call_id, call, p)

    def _ended(self, call_id: str, call: _Call, p: _Pushed) -> None:
        answered_by = p.get("AnsweredBy")
        by = f"answered by {answered_by}" if answered_by else "nobody answered"
        self.calls_ended += 1
        self._line(f"{'── call ended':<14} {call.parties}: {p.get('Reason') or '?'}, {by}, talk "
                   f"{p.get('Billsec') or '0'} s ({p.get('Duration') or '0'} s in all, {call.events} events)")
        del self._calls[call_id]

    def _match_click(self, p: _Pushed) -> Click | None:
        """A new call is a click when it carries the originateId (CallId on Asterisk 13+, or
        an OriginateId header), or, on Asterisk 11 (no ChannelId), when its first event is the
        operator's phone ringing."""
        for click in self._pending_clicks:
            if click.originate_id in (p.get("CallId"), p.get("OriginateId")):
                break
        else:
            click = next((c for c in self._pending_clicks
                          if p.name == "CallRinging" and p.get("Extension") == c.operator), None)
        if click is not None:
            self._pending_clicks.remove(click)
        return click
