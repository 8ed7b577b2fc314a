"""`asterisk-bridge demo`: simulator + SQLite outbox + SOAP service + a local ERP sink, printed live."""

from __future__ import annotations

import logging
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from lxml import etree

from bridge.config import (AmiConfig, Config, DatabaseConfig, LoggingConfig, MetricsConfig,
                           SoapConfig, SubscriberConfig)
from bridge import ns

log = logging.getLogger(__name__)

DEMO_AMI_USER, DEMO_AMI_SECRET = "bridge", "demo-ami-secret"
DEMO_SOAP_USER, DEMO_SOAP_PASSWORD = "demo", "demo"
FIRST_CALL_AFTER_S = 2.0       # a newcomer should see something at once, not after a minute
PRINT_POLL_S = 0.2
SCENARIOS = ("answered", "noanswer", "answered", "busy", "queue", "caller-hangup-ringing",
             "answered", "blind-transfer")
CALLERS = (("202", "Оператор-202"), ("203", "Мария Иванова"), ("204", "Sales desk"))
CALLEES = ("902", "903", "904")


def demo_config(ami_port: int, sink_url: str, db_url: str, profile: str, ajam_url: str | None = None) -> Config:
    """Everything on loopback, free ports for SOAP and metrics, one normalized subscriber;
    with `ajam_url`, the AMI link is AJAM (transport = "http") to the simulator's HTTP side."""
    http = {"transport": "http", "url": ajam_url} if ajam_url else {}
    return Config(
        database=DatabaseConfig(url=db_url, batch_max_delay_s=0.005),
        ami=(AmiConfig(name=f"sim-{profile}", host="127.0.0.1", port=ami_port, username=DEMO_AMI_USER,
                       secret=DEMO_AMI_SECRET, reconnect_base_s=0.2, reconnect_cap_s=2.0, **http),),
        soap=SoapConfig(listen="127.0.0.1:0", users={DEMO_SOAP_USER: DEMO_SOAP_PASSWORD}),
        subscribers=(SubscriberConfig(name="erp", url=sink_url, mode="normalized", retry_base_s=0.5,
                                      retry_cap_s=5.0),),
        logging=LoggingConfig(level="WARNING"),
        metrics=MetricsConfig(listen="127.0.0.1:0"),
    )


class CallGenerator(threading.Thread):
    """Starts a simulated call every 60/calls_per_minute seconds (the first after FIRST_CALL_AFTER_S)."""

    def __init__(self, simulator, calls_per_minute: float, seed: int | None = None) -> None:
        super().__init__(name="demo-calls", daemon=True)
        self.simulator = simulator
        self.interval_s = 60.0 / calls_per_minute if calls_per_minute > 0 else None
        self._rng = random.Random(seed)
        self._stop_event = threading.Event()

    def run(self) -> None:
        if self.interval_s is None:
            return
        delay, n = FIRST_CALL_AFTER_S, 0
        while not self._stop_event.wait(delay):
            scenario = SCENARIOS[n % len(SCENARIOS)]
            caller, name = self._rng.choice(CALLERS)
            try:
                self.simulator.run_scenario(scenario, caller=caller, caller_name=name,
                                            callee=self._rng.choice(CALLEES))
            except Exception:  # the top of a thread: one bad scenario must not end the demo
                log.exception("demo: scenario %s failed", scenario)
            n += 1
            delay = self.interval_s

    def stop(self) -> None:
        self._stop_event.set()
        self.join(1.0)


@dataclass
class _CallSummary:
    events: int = 0
    caller: str = ""
    callee: str = ""


@dataclass
class DeliveryPrinter:
    """Turns the PushEvent envelopes the sink received into one line per event, one per ended call."""

    out: TextIO
    seen: int = 0
    delivered: int = 0
    calls_ended: int = 0
    _calls: dict[str, _CallSummary] = field(default_factory=dict)

    def drain(self, sink) -> None:
        receipts = sink.delivered()
        for receipt in receipts[self.seen:]:
            self.print_envelope(receipt.body)
        self.seen = len(receipts)

    def print_envelope(self, body: bytes) -> None:
        try:
            push = etree.fromstring(body).find(f".//{{{ns.EVENTS}}}PushEvent")
        except etree.XMLSyntaxError:
            self.out.write("(the sink received something that is not XML)\n")
            return
        if push is None:
            return
        name = push.findtext(f"{{{ns.EVENTS}}}name") or "?"
        call = {etree.QName(el).localname: el.text or "" for el in push.iterfind(f"{{{ns.EVENTS}}}call/*")}
        self.delivered += 1
        call_id = call.get("CallId") or push.findtext(f"{{{ns.EVENTS}}}orderKey") or "?"
        summary = self._calls.setdefault(call_id, _CallSummary())
        summary.events += 1
        summary.caller = _party(call.get("CallerIDNum"), call.get("CallerIDName")) or summary.caller
        summary.callee = call.get("CalleeNum") or call.get("Extension") or summary.callee
        detail = call.get("State", "")
        if name == "CallEnded":
            detail = f"{call.get('Reason', '?')}, talk {call.get('Billsec', '0')} s"
        elif name == "CallAnswered" and call.get("AnsweredBy"):
            detail = f"answered by {call['AnsweredBy']}"
        now = datetime.now().strftime("%H:%M:%S")
        self.out.write(f"{now}  {name:<16} call {call_id:<22} {summary.caller} → {summary.callee or '?'}"
                       f"  [{detail}]\n")
        if name == "CallEnded":
            self.calls_ended += 1
            self.out.write(f"          ── call {call_id} ended ({call.get('Reason', '?')}, "
                           f"{call.get('Duration', '0')} s in all): {summary.events} events delivered\n")
            del self._calls[call_id]
        self.out.flush()


def _party(num: str | None, name: str | None) -> str:
    if not num:
        return ""
    return f"{num} ({name})" if name and name != num else num


def _banner(out: TextIO, runtime, sink, sim, workdir: Path) -> None:
    soap_url = f"http://127.0.0.1:{runtime.soap_server.port}{runtime.config.soap.path}"
    action = f"{ns.BRIDGE}#Bridge:GetActiveCalls"
    link = f"AJAM {sim.ajam.url}rawman" if runtime.config.ami[0].transport == "http" else f"AMI 127.0.0.1:{sim.port}"
    out.write(f"""asterisk-bridge demo — no Asterisk needed; Ctrl-C stops.
  Asterisk simulator ({sim.profile})  {link}  (user {DEMO_AMI_USER})
  outbox (SQLite)            {workdir / 'outbox.db'}
  ERP sink (PushEvent)       {sink.url}
  SOAP service               {soap_url}   WSDL: {soap_url}?wsdl
  metrics / health           http://127.0.0.1:{runtime.health_server.port}/metrics  /healthz
Ask for the active calls (SOAP 1.1, user {DEMO_SOAP_USER}/{DEMO_SOAP_PASSWORD}):
  curl -s -u {DEMO_SOAP_USER}:{DEMO_SOAP_PASSWORD} -H 'Content-Type: text/xml; charset=utf-8' \\
    -H 'SOAPAction: "{action}"' {soap_url} \\
    --data '<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}"><soap:Body><GetActiveCalls xmlns="{ns.BRIDGE}"/></soap:Body></soap:Envelope>'
Calls delivered to the ERP sink (normalized events), as they arrive:
""")  # noqa: E501  (a shell command the user copies: one line)
    out.flush()


def run_demo(duration_s: float | None = None, calls_per_minute: float = 6.0, profile: str = "asterisk20",
             verbose: bool = False, out: TextIO | None = None, transport: str = "tcp") -> int:
    from bridge.testing.simulator import AmiSimulator
    from bridge.logsetup import setup_logging
    from bridge.testing.fake_erp import FakeErp
    from bridge.runtime import Runtime

    out = out or sys.stdout
    setup_logging("DEBUG" if verbose else "WARNING", secrets=[DEMO_AMI_SECRET])
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    with tempfile.TemporaryDirectory(prefix="asterisk-bridge-demo-") as tmp, \
            AmiSimulator(profile, users={DEMO_AMI_USER: DEMO_AMI_SECRET},
                         http_port=0 if transport == "http" else None) as sim, \
            FakeErp(path="/erp/ws/asterisk") as sink:
        workdir = Path(tmp)
        config = demo_config(sim.port, sink.url, f"sqlite:///{workdir / 'outbox.db'}", profile,
                             sim.ajam.url if sim.ajam is not None else None)
        runtime = Runtime(config, auto_upgrade=True, drain_timeout_s=5.0)
        generator = CallGenerator(sim, calls_per_minute)
        printer = DeliveryPrinter(out)
        try:
            runtime.start()
            _banner(out, runtime, sink, sim, workdir)
            generator.start()
            deadline = time.monotonic() + duration_s if duration_s else None
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                sink.wait_for(lambda s: len(s.delivered()) > printer.seen, PRINT_POLL_S)
                printer.drain(sink)
            out.write("stopping: finishing deliveries…\n")
        finally:
            generator.stop()
            runtime.stop()
            printer.drain(sink)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        out.write(f"demo stopped: {printer.delivered} events delivered, {printer.calls_ended} calls ended.\n")
        out.flush()
    return 0
