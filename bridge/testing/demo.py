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
from pathlib import Path
from typing import TextIO

from lxml import etree

from bridge.config import (AmiConfig, Config, DatabaseConfig, LoggingConfig, MetricsConfig,
                           SoapConfig, SubscriberConfig)
from bridge import ns
from bridge.testing.demo_story import Click, StoryPrinter

log = logging.getLogger(__name__)

DEMO_AMI_USER, DEMO_AMI_SECRET = "bridge", "demo-ami-secret"
DEMO_SOAP_USER, DEMO_SOAP_PASSWORD = "demo", "demo"
FIRST_CALL_AFTER_S = 2.0       # a newcomer should see something at once, not after a minute
PRINT_POLL_S = 0.2
CLICK = "click-to-call"         # not a simulator scenario: 1C's ClickToCall through the SOAP service
SCENARIOS = ("answered", CLICK, "noanswer", "queue", "busy", CLICK, "caller-hangup-ringing",
             "blind-transfer")
CALLERS = (("202", "Оператор-202"), ("203", "Мария Иванова"), ("204", "Sales desk"))
CALLEES = ("902", "903", "904")
# Numbers 1C dials with ClickToCall; the simulator's operator does not pick up for the second.
CLICK_NUMBERS = ("89161234567", "84951234567")
CLICK_OUTCOMES = {"84951234567": "noanswer"}
LOSE_ANSWER_TO = 3             # the sink drops its answer to this event once: a re-delivery to watch


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


def demo_config(ami_port: int, sink_url: str, db_url: str, profile: str, ajam_url: str | None = None,
                soap_port: int = 0, metrics_port: int = 0) -> Config:
    """Everything on loopback, free ports for SOAP and metrics, one normalized subscriber;
    with `ajam_url`, the AMI link is AJAM (transport = "http") to the simulator's HTTP side."""
    http = {"transport": "http", "url": ajam_url} if ajam_url else {}
    return Config(
        database=DatabaseConfig(url=db_url, batch_max_delay_s=0.005),
        ami=(AmiConfig(name=f"sim-{profile}", host="127.0.0.1", port=ami_port, username=DEMO_AMI_USER,
                       secret=DEMO_AMI_SECRET, reconnect_base_s=0.2, reconnect_cap_s=2.0, **http),),
        soap=SoapConfig(listen=f"127.0.0.1:{soap_port}", users={DEMO_SOAP_USER: DEMO_SOAP_PASSWORD}),
        subscribers=(SubscriberConfig(name="erp", url=sink_url, mode="normalized", retry_base_s=0.5,
                                      retry_cap_s=5.0),),
        logging=LoggingConfig(level="WARNING"),
        metrics=MetricsConfig(listen=f"127.0.0.1:{metrics_port}"),
    )


def click_to_call(soap_url: str, operator: str, number: str) -> str:
    """ClickToCall over HTTP, as 1C would send it; returns the originateId."""
    import requests

    body = (f'<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}"><soap:Body><ClickToCall xmlns="{ns.BRIDGE}">'
            f"<extension>{operator}</extension><number>{number}</number></ClickToCall></soap:Body></soap:Envelope>")
    reply = requests.post(soap_url, data=body.encode("utf-8"), auth=(DEMO_SOAP_USER, DEMO_SOAP_PASSWORD),
                          headers={"Content-Type": "text/xml; charset=utf-8",
                                   "SOAPAction": f'"{ns.BRIDGE}#Bridge:ClickToCall"'}, timeout=10)
    reply.raise_for_status()
    return etree.fromstring(reply.content).findtext(".//{*}return") or ""


class CallGenerator(threading.Thread):
    """Starts a call every 60/calls_per_minute seconds (the first after FIRST_CALL_AFTER_S): a
    simulator scenario, or a ClickToCall through the bridge's SOAP service."""

    def __init__(self, simulator, calls_per_minute: float, seed: int | None = None,
                 soap_url: str | None = None, printer: StoryPrinter | None = None) -> None:
        super().__init__(name="demo-calls", daemon=True)
        self.simulator = simulator
        self.soap_url = soap_url
        self.printer = printer
        self.interval_s = 60.0 / calls_per_minute if calls_per_minute > 0 else None
        self._rng = random.Random(seed)
        self._clicks = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        if self.interval_s is None:
            return
        delay, n = FIRST_CALL_AFTER_S, 0
        while not self._stop_event.wait(delay):
            scenario = SCENARIOS[n % len(SCENARIOS)]
            caller, name = self._rng.choice(CALLERS)
            try:
                if scenario == CLICK:
                    self._click(caller)
                else:
                    self.simulator.run_scenario(scenario, caller=caller, caller_name=name,
                                                callee=self._rng.choice(CALLEES))
            except Exception:  # the top of a thread: one bad scenario must not end the demo
                log.exception("demo: scenario %s failed", scenario)
            n += 1
            delay = self.interval_s

    def _click(self, operator: str) -> None:
        if self.soap_url is None:
            return
        number = CLICK_NUMBERS[self._clicks % len(CLICK_NUMBERS)]
        self._clicks += 1
        originate_id = click_to_call(self.soap_url, operator, number)
        if self.printer is not None:
            self.printer.click_placed(Click(operator, number, originate_id))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(1.0)


def lose_answer_once(sink, nth: int) -> None:
    """Make the sink read the `nth` event and then reset the connection instead of answering:
    the ERP has it, the bridge does not know, so it sends it again with the same id."""
    from bridge.testing import fake_erp as modes

    def on_receipt(receipt) -> None:
        if receipt.answered != modes.OK:
            sink.set_mode(modes.OK)          # once is enough
            sink.on_receipt = None
        elif sink.count == nth - 1:
            sink.set_mode(modes.RESET)

    if nth > 1:
        sink.on_receipt = on_receipt


def _banner(out: TextIO, runtime, sink, sim, workdir: Path, lose_answer_to: int, notes: dict[str, str]) -> None:
    soap_url = f"http://127.0.0.1:{runtime.soap_server.port}{runtime.config.soap.path}"
    metrics_url = f"http://127.0.0.1:{runtime.health_server.port}"
    lost = (f"\nThe sink drops its answer to event #{lose_answer_to} once, so you see the bridge re-deliver "
            "it (--lose-answer 0: never)." if lose_answer_to > 1 else "")
    action = f"{ns.BRIDGE}#Bridge:GetActiveCalls"
    link = f"AJAM {sim.ajam.url}rawman" if runtime.config.ami[0].transport == "http" else f"AMI 127.0.0.1:{sim.port}"
    out.write(f"""asterisk-bridge demo — no Asterisk needed; Ctrl-C stops.
  Asterisk simulator ({sim.profile})  {link}  (user {DEMO_AMI_USER}, secret {DEMO_AMI_SECRET})
  outbox (SQLite)            {workdir / 'outbox.db'}
  ERP sink (PushEvent)       {sink.url}   (open it in a browser: what it received)
  SOAP service               {soap_url}{notes.get('soap', '')}   WSDL: {soap_url}?wsdl
  SOAP user / password       {DEMO_SOAP_USER} / {DEMO_SOAP_PASSWORD}
  metrics / health           {metrics_url}/metrics  {metrics_url}/healthz{notes.get('metrics', '')}
Ask for the active calls (SOAP 1.1):
  curl -s -u {DEMO_SOAP_USER}:{DEMO_SOAP_PASSWORD} -H 'Content-Type: text/xml; charset=utf-8' \\
    -H 'SOAPAction: "{action}"' {soap_url} \\
    --data '<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}"><soap:Body><GetActiveCalls xmlns="{ns.BRIDGE}"/></soap:Body></soap:Envelope>'
What the ERP receives, as it arrives: every event, then one line per call when it ends.
Every few calls 1C presses ClickToCall (through the SOAP service above).{lost}
""")  # noqa: E501  (a shell command the user copies: one line)
    out.flush()


def run_demo(duration_s: float | None = None, calls_per_minute: float = 6.0, profile: str = "asterisk20",
             verbose: bool = False, out: TextIO | None = None, lose_answer_to: int = LOSE_ANSWER_TO,
             transport: str = "tcp", soap_port: int | None = None, metrics_port: int | None = None,
             keep_db: bool = False) -> int:
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
    notes = {"soap": soap_note, "metrics": metrics_note}
    try:
        with AmiSimulator(profile, users={DEMO_AMI_USER: DEMO_AMI_SECRET},
                          originate_outcomes=CLICK_OUTCOMES,
                          http_port=0 if transport == "http" else None) as sim, \
                FakeErp(path="/erp/ws/asterisk") as sink:
            config = demo_config(sim.port, sink.url, f"sqlite:///{workdir / 'outbox.db'}", profile,
                                 sim.ajam.url if sim.ajam is not None else None, soap_port, metrics_port)
            return _run(out, sim, sink, config, workdir, calls_per_minute, duration_s, stop, previous,
                        lose_answer_to, notes)
    finally:
        if keep_db:
            out.write(f"outbox kept: {workdir / 'outbox.db'}\n"
                      f"  asterisk-bridge outbox list --database-url sqlite:///{workdir / 'outbox.db'}\n")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(out, sim, sink, config, workdir: Path, calls_per_minute: float, duration_s, stop, previous,
         lose_answer_to: int, notes: dict[str, str]) -> int:
    """Bridge up, banner, the story of what the ERP receives until stopped; then a clean stop."""
    from bridge.runtime import Runtime

    runtime = Runtime(config, auto_upgrade=True, drain_timeout_s=5.0)
    generator: CallGenerator | None = None
    printer = StoryPrinter(out)
    lose_answer_once(sink, lose_answer_to)
    try:
        runtime.start()
        _banner(out, runtime, sink, sim, workdir, lose_answer_to, notes)
        soap_url = f"http://127.0.0.1:{runtime.soap_server.port}{config.soap.path}"
        generator = CallGenerator(sim, calls_per_minute, soap_url=soap_url, printer=printer)
        generator.start()
        deadline = time.monotonic() + duration_s if duration_s else None
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            sink.wait_for(lambda s: s.count > printer.receipts_seen, PRINT_POLL_S)
            printer.drain(sink)
        out.write("stopping: finishing deliveries…\n")
    finally:
        if generator is not None:
            generator.stop()
        runtime.stop()
        printer.drain(sink)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.write(f"demo stopped: {printer.delivered} events delivered ({printer.redeliveries} re-delivered), "
              f"{printer.calls_ended} calls ended.\n")
    out.flush()
    return 0
