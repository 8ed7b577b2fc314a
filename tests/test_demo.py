"""bridge/testing/demo.py: `python -m bridge demo` shows delivered call events with no Asterisk around."""

from __future__ import annotations

import pytest

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

pytestmark = pytest.mark.slow  # runs the demo for seconds, twice

ROOT = Path(__file__).parent.parent
EVENT_LINE = re.compile(r"^\d\d:\d\d:\d\d  (CallRinging|CallAnswered|CallEnded|CallTransferred|LinkUp|LinkDown) ")
RINGING = re.compile(r"^\d\d:\d\d:\d\d  CallRinging +(\d+) is ringing — (.+?)  \[call (\S+)\]$")
STORY = re.compile(r"^\d\d:\d\d:\d\d  ── call ended +(.+?): ([\w-]+), (answered by \d+|nobody answered), "
                   r"talk (\d+) s \((\d+) s in all, (\d+) events\)$")
CLICK = re.compile(r"^\d\d:\d\d:\d\d  ClickToCall +operator (20[234]) → (89161234567) +\(1C pressed it; "
                   r"originateId (\S+)\)$")
REDELIVERY = re.compile(r"^\d\d:\d\d:\d\d  ↻ re-delivery +(\w+) \[call (\S+)\]: same id ")


def run_demo(*args: str, timeout_s: float = 90) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    return subprocess.run([sys.executable, "-m", "bridge", "demo", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout_s)


def test_demo_tells_call_stories_clicks_and_redeliveries_and_stops_cleanly_when_duration_ends():
    # A call every 3 s: the first (answered, 5 s) and a ClickToCall (7 s) both end within 14 s.
    result = run_demo("--duration", "14", "--calls-per-minute", "20")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    lines = out.splitlines()
    assert "WSDL: http://127.0.0.1:" in out and "?wsdl" in out
    assert "curl -s -u demo:demo" in out
    events = [line for line in lines if EVENT_LINE.match(line)]
    assert re.match(r"^\d\d:\d\d:\d\d  LinkUp +sim-asterisk20 connected \(first time since the bridge started\): "
                    r"Asterisk 22\.10\.1$", events[0]), out
    assert re.match(r"^\d\d:\d\d:\d\d  LinkDown +sim-asterisk20 lost \(bridge stopped\): telephony unavailable$",
                    events[-1]), out

    # The first call (the "answered" scenario): 202/203/204 calls 902/903/904, who answers after ringing.
    first = next(m for m in map(RINGING.match, lines) if m)
    callee, parties, call_id = first.groups()
    assert callee in ("902", "903", "904") and re.fullmatch(r"20[234] \(.+\) → " + callee, parties), first.group(0)
    story = [m.groups() for m in map(STORY.match, lines) if m and m.group(1) == parties]
    assert story and story[0][1:4] == ("answered", f"answered by {callee}", "3"), out

    # The ClickToCall: placed through SOAP, told as operator → number, the operator's phone ringing first.
    click = next(m for m in map(CLICK.match, lines) if m)
    operator, number, originate_id = click.groups()
    ringing = [m.groups() for m in map(RINGING.match, lines) if m and m.group(3) == originate_id]
    assert ringing == [(operator, f"ClickToCall {operator} → {number}", originate_id),
                       (number, f"ClickToCall {operator} → {number}", originate_id)], out
    click_story = [m.groups() for m in map(STORY.match, lines) if m and m.group(1).startswith("ClickToCall")]
    assert click_story and click_story[0][:4] == (f"ClickToCall {operator} → {number}", "answered",
                                                  f"answered by {number}", "3"), out

    # Event #3 (the first call's CallAnswered) was received, its answer dropped, then re-sent.
    dropped = next(i for i, line in enumerate(lines) if "✗ the sink dropped its answer" in line)
    assert re.match(r"^\d\d:\d\d:\d\d  CallAnswered +" + callee + " answered", lines[dropped - 1]), out
    again = [m.groups() for m in map(REDELIVERY.match, lines) if m]
    assert again == [("CallAnswered", call_id)], out

    summary = re.search(r"demo stopped: (\d+) events delivered \((\d+) re-delivered\), (\d+) calls ended\.", out)
    assert summary and int(summary.group(1)) == len(events) and int(summary.group(2)) == 1, out
    assert int(summary.group(3)) == sum(1 for line in lines if STORY.match(line)) >= 2
    assert "Traceback" not in result.stderr


def test_demo_stops_cleanly_on_ctrl_c():
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    seen = ""
    try:
        deadline = time.monotonic() + 45
        while " CallRinging " not in seen and time.monotonic() < deadline:   # the first call: 2 s in
            try:
                seen += lines.get(timeout=0.5)
            except queue.Empty:
                pass
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)               # stdout belongs to the reader thread
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    reader.join(5)
    while not lines.empty():
        seen += lines.get()
    assert " CallRinging " in seen, seen + err
    assert proc.returncode == 0, err[-3000:]
    assert "demo stopped:" in seen


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_uses_the_given_ports_keeps_the_outbox_and_its_sink_answers_a_browser():
    import urllib.request

    soap_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "demo", "--soap-port", str(soap_port),
                             "--metrics-port", str(metrics_port), "--keep-db", "--calls-per-minute", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen = ""
    try:
        deadline = time.monotonic() + 45
        while " CallRinging " not in seen and time.monotonic() < deadline:
            try:
                seen += lines.get(timeout=0.5)
            except queue.Empty:
                pass
        assert f"http://127.0.0.1:{soap_port}/bridge" in seen and f"127.0.0.1:{metrics_port}/metrics" in seen
        assert "SOAP user / password       demo / demo" in seen
        sink_url = re.search(r"ERP sink \(PushEvent\)\s+(\S+)", seen).group(1)
        with urllib.request.urlopen(sink_url, timeout=5) as response:
            page = response.read().decode()
        assert response.headers["Content-Type"].startswith("text/plain")
        assert re.search(r"PushEvent sink \(plays the ERP\): [1-9]\d* event\(s\) received", page), page
        assert "CallRinging" in page
        with urllib.request.urlopen(sink_url + "?wsdl", timeout=5) as response:
            assert b'<xs:element name="PushEvent" type="tns:Event"/>' in response.read()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    time.sleep(0.2)
    while not lines.empty():
        seen += lines.get()
    kept = re.search(r"outbox kept: (\S+)", seen).group(1)
    try:
        from bridge.outbox.db import check_schema, make_engine

        engine = make_engine(f"sqlite:///{kept}")
        check_schema(engine)
        engine.dispose()
    finally:
        import shutil

        shutil.rmtree(Path(kept).parent, ignore_errors=True)


def test_demo_delivers_calls_over_ajam_when_transport_is_http():
    import io

    from bridge.testing.demo import run_demo as run_demo_in_process

    out = io.StringIO()
    assert run_demo_in_process(duration_s=4, calls_per_minute=60, transport="http", out=out) == 0
    text = out.getvalue()
    assert re.search(r"Asterisk simulator \(asterisk20\)  AJAM http://127\.0\.0\.1:\d+/asterisk/rawman", text)
    assert re.search(r"CallRinging +\d+ is ringing", text), text[-800:]
