"""What a scenario may do: place calls as a customer or a phone (driver AMI), call the bridge's
SOAP service, and read the story the ERP sink received for a call."""

from __future__ import annotations

import threading
import time
import uuid

from tests.asterisk.bridgeproc import BridgeProcess, pushed_event
from tests.asterisk.driver import AmiDriver
from tests.asterisk.pbx import Pbx
from tests.asterisk.stories import END

STORY_TIMEOUT_S = 45.0
SETTLE_S = 1.5         # after the final CallEnded, anything else for the call would be a defect


class Live:
    def __init__(self, pbx: Pbx, driver: AmiDriver, bridge: BridgeProcess, sink, proxy=None) -> None:
        self.pbx, self.driver, self.bridge, self.sink = pbx, driver, bridge, sink
        self.proxy = proxy         # the ARI link's TcpProxy (transport ari only)
        self._parsed: list[dict] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._consumed = 0

    # --- what the ERP received -------------------------------------------------------------------

    def _events(self) -> list[dict]:
        # The sink's lock first and released: sink.wait_for calls this holding it (no inversion).
        receipts = self.sink.delivered()
        with self._lock:
            for r in receipts[self._consumed:]:
                if r.id not in self._seen:       # at-least-once: a re-delivery is the same event
                    self._seen.add(r.id)
                    self._parsed.append(pushed_event(r.body))
            self._consumed = max(self._consumed, len(receipts))   # a later caller may hold an older list
            return list(self._parsed)

    def story(self, call_id: str) -> list[dict]:
        return [e for e in self._events() if e.get("CallId") == call_id]

    def wait_for(self, call_id: str, name: str, extension: str | None = None,
                 timeout_s: float = STORY_TIMEOUT_S) -> dict:
        def found() -> dict | None:
            return next((e for e in self.story(call_id) if e["name"] == name
                         and (extension is None or e.get("Extension") == extension)), None)
        self.sink.wait_for(lambda _: found() is not None, timeout_s)
        event = found()
        if event is None:
            raise TimeoutError(f"{name} {extension or ''} of call {call_id} never reached the ERP")
        return event

    def finished_story(self, call_id: str, timeout_s: float = STORY_TIMEOUT_S) -> list[dict]:
        """The call's events once its final CallEnded arrived, plus SETTLE_S for stragglers."""
        def ended() -> bool:
            return any(e["name"] == END and e.get("CallState") == "ended" for e in self.story(call_id))
        self.sink.wait_for(lambda _: ended(), timeout_s)
        time.sleep(SETTLE_S)
        return self.story(call_id)

    # --- calls placed by the driver --------------------------------------------------------------

    def dial(self, caller: str, exten: str, *, context: str, device: str, name: str | None = None,
             hold_s: int | None = None) -> str:
        """A customer (device `pstn`) or an internal phone (`handset`) picks up and dials `exten`
        in `context`; returns the call's id (the Linkedid: the ChannelId we chose)."""
        call_id = f"live-{uuid.uuid4().hex[:12]}"
        callerid = f'"{name}" <{caller}>' if name else f"<{caller}>"
        reply = self.driver.action(
            "Originate", Channel=f"Local/{caller}@{device}", Context=context, Exten=exten, Priority=1,
            CallerID=callerid, ChannelId=call_id, Async="true",
            Variable=[f"HOLD={hold_s}"] if hold_s else None)
        if reply.get("Response") != "Success":
            raise RuntimeError(f"driver Originate failed: {reply}")
        return call_id

    def into_application(self, device: str, app: str, data: str, caller: str, timeout_s: int | None = None) -> str:
        """An AMI Originate of `device` (a Local channel) straight into a dialplan application
        (no Context/Exten): an auto-dialer playing a message to a phone; returns the CallId."""
        call_id = f"live-{uuid.uuid4().hex[:12]}"
        extra = {"Timeout": str(timeout_s * 1000)} if timeout_s else {}
        reply = self.driver.action(
            "Originate", Channel=device, Application=app, Data=data, CallerID=f"<{caller}>",
            ChannelId=call_id, Async="true", **extra)
        if reply.get("Response") != "Success":
            raise RuntimeError(f"driver Originate failed: {reply}")
        return call_id

    def inbound(self, caller: str, exten: str, **kw) -> str:
        return self.dial(caller, exten, context="from-trunk", device="pstn", **kw)

    def internal(self, caller: str, exten: str, **kw) -> str:
        return self.dial(caller, exten, context="from-internal", device="handset", **kw)

    def channel(self, uniqueid: str) -> str:
        return self.driver.channel_of(uniqueid)

    def bridged_peer(self, uniqueid: str, device_prefix: str) -> str:
        """The channel named `device_prefix…;1` in the bridge that `uniqueid` joined (the phone's leg)."""
        mine = self.driver.wait_event(lambda e: e.get("Event") == "BridgeEnter" and e.get("Uniqueid") == uniqueid)
        peer = self.driver.wait_event(lambda e: e.get("Event") == "BridgeEnter"
                                      and e.get("BridgeUniqueid") == mine["BridgeUniqueid"]
                                      and e.get("Channel", "").startswith(device_prefix))
        return peer["Channel"]

    def kick_bridge(self) -> None:
        """Cut the bridge's AMI session from the Asterisk side (`manager kick session`), or its ARI
        connections at the proxy in between."""
        if self.proxy is not None:
            self.proxy.reset()
            return
        rows = [r.split() for r in self.pbx.cli("manager show connected").splitlines()]
        fds = [r[4] for r in rows if len(r) > 5 and r[0] == "bridge"]
        if not fds:
            raise RuntimeError("the bridge has no AMI session to kick")
        for fd in fds:
            self.pbx.cli(f"manager kick session {fd}")

    def raw_lines(self, call_id: str | None, limit: int = 80) -> str:
        """The call's channel events as the driver saw them (shown when a story is wrong)."""
        keys = ("Channel", "ChannelState", "Context", "Exten", "Application", "DestChannel", "DialStatus",
                "Cause", "BridgeUniqueid")
        lines = [" ".join([e["Event"]] + [f"{k}={e[k]}" for k in keys if e.get(k)])
                 for e in list(self.driver.events)
                 if call_id and e.get("Linkedid") == call_id and e["Event"] not in NOISE]
        return "\n".join(lines[-limit:])


NOISE = frozenset({"VarSet", "NewCallerid", "NewConnectedLine", "DeviceStateChange", "Cdr", "RTCPSent",
                   "DTMFBegin", "DTMFEnd", "LocalBridge", "SoftHangupRequest", "HangupRequest"})
