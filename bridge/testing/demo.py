"""`asterisk-bridge demo`: simulator + SQLite outbox + SOAP service + a local ERP sink, printed live."""

from __future__ import annotations

import logging
import random
import shutil
import signal
import socket
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


# Ports the demo prefers, so a browser bookmark or a WS-reference keeps working across runs; a
# busy one falls back to a free port (said in the banner). --soap-port/--metrics-port are strict.
DEMO_SOAP_PORT, DEMO_METRICS_PORT = 8080, 9108


def pick_port(requested: int | None, preferred: int) -> tuple[int, str]:
    """(port to listen on, note for the banner); 0 means any free port."""
    if requested is not None:
        return requested, ""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            return 0, f" (port {preferred} is busy)"
    return preferred, ""


def demo_config(ami_port: int, sink_url: str, db_url: str, profile: str, soap_port: int = 0,
                metrics_port: int = 0) -> Config:
    """Everything on loopback, one normalized subscriber."""
    return Config(
        database=DatabaseConfig(url=db_url, batch_max_delay_s=0.005),
        ami=(AmiConfig(name=f"sim-{profile}", host="127.0.0.1", port=ami_port, username=DEMO_AMI_USER,
                       secret=DEMO_AMI_SECRET, reconnect_base_s=0.2, reconnect_cap_s=2.0),),
        soap=SoapConfig(listen=f"127.0.0.1:{soap_port}", users={DEMO_SOAP_USER: DEMO_SOAP_PASSWORD}),
        subscribers=(SubscriberConfig(name="erp", url=sink_url, mode="normalized", retry_base_s=0.5,
                                      retry_cap_s=5.0),),
        logging=LoggingConfig(level="WARNING"),
        metrics=MetricsConfig(listen=f"127.0.0.1:{metrics_port}"),
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


def _banner(out: TextIO, runtime, sink, sim, workdir: Path, notes: dict[str, str]) -> None:
    soap_url = f"http://127.0.0.1:{runtime.soap_server.port}{runtime.config.soap.path}"
    metrics_url = f"http://127.0.0.1:{runtime.health_server.port}"
    action = f"{ns.BRIDGE}#Bridge:GetActiveCalls"
    out.write(f"""asterisk-bridge demo — no Asterisk needed; Ctrl-C stops.
  AMI simulator ({sim.profile})  127.0.0.1:{sim.port}  (user {DEMO_AMI_USER}, secret {DEMO_AMI_SECRET})
  outbox (SQLite)            {workdir / 'outbox.db'}
  ERP sink (PushEvent)       {sink.url}   (open it in a browser: what it received)
  SOAP service               {soap_url}{notes.get('soap', '')}   WSDL: {soap_url}?wsdl
  SOAP user / password       {DEMO_SOAP_USER} / {DEMO_SOAP_PASSWORD}
  metrics / health           {metrics_url}/metrics  {metrics_url}/healthz{notes.get('metrics', '')}
Ask for the active calls (SOAP 1.1):
  curl -s -u {DEMO_SOAP_USER}:{DEMO_SOAP_PASSWORD} -H 'Content-Type: text/xml; charset=utf-8' \\
    -H 'SOAPAction: "{action}"' {soap_url} \\
    --data '<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}"><soap:Body><GetActiveCalls xmlns="{ns.BRIDGE}"/></soap:Body></soap:Envelope>'
Calls delivered to the ERP sink (normalized events), as they arrive:
""")  # noqa: E501  (a shell command the user copies: one line)
    out.flush()


def run_demo(duration_s: float | None = None, calls_per_minute: float = 6.0, profile: str = "asterisk20",
             verbose: bool = False, out: TextIO | None = None, soap_port: int | None = None,
             metrics_port: int | None = None, keep_db: bool = False) -> int:
    from bridge.testing.simulator import AmiSimulator
    from bridge.logsetup import setup_logging
    from bridge.testing.fake_erp import FakeErp

    out = out or sys.stdout
    setup_logging("DEBUG" if verbose else "WARNING", secrets=[DEMO_AMI_SECRET])
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    workdir = Path(tempfile.mkdtemp(prefix="asterisk-bridge-demo-"))
    soap_port, soap_note = pick_port(soap_port, DEMO_SOAP_PORT)
    metrics_port, metrics_note = pick_port(metrics_port, DEMO_METRICS_PORT)
    try:
        with AmiSimulator(profile, users={DEMO_AMI_USER: DEMO_AMI_SECRET}) as sim, \
                FakeErp(path="/erp/ws/asterisk") as sink:
            return _run(out, sim, sink, workdir, profile, calls_per_minute, duration_s, stop,
                        soap_port, metrics_port, {"soap": soap_note, "metrics": metrics_note}, previous)
    finally:
        if keep_db:
            out.write(f"outbox kept: {workdir / 'outbox.db'}\n"
                      f"  asterisk-bridge outbox list --database-url sqlite:///{workdir / 'outbox.db'}\n")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(out, sim, sink, workdir: Path, profile: str, calls_per_minute: float, duration_s, stop,
         soap_port: int, metrics_port: int, notes: dict[str, str], previous) -> int:
    """Bridge up, banner, one line per delivered event until stopped; then a clean stop."""
    from bridge.runtime import Runtime

    config = demo_config(sim.port, sink.url, f"sqlite:///{workdir / 'outbox.db'}", profile,
                         soap_port, metrics_port)
    runtime = Runtime(config, auto_upgrade=True, drain_timeout_s=5.0)
    generator = CallGenerator(sim, calls_per_minute)
    printer = DeliveryPrinter(out)
    try:
        runtime.start()
        _banner(out, runtime, sink, sim, workdir, notes)
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
