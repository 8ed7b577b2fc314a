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
EVENT_LINE = re.compile(r"^\d\d:\d\d:\d\d  (CallRinging|CallAnswered|CallEnded|CallTransferred)\s+call \S+")


def run_demo(*args: str, timeout_s: float = 90) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    return subprocess.run([sys.executable, "-m", "bridge", "demo", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout_s)


def test_demo_prints_delivered_call_events_and_stops_cleanly_when_duration_ends():
    result = run_demo("--duration", "12", "--calls-per-minute", "12")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "WSDL: http://127.0.0.1:" in out and "?wsdl" in out
    assert "curl -s -u demo:demo" in out
    events = [line for line in out.splitlines() if EVENT_LINE.match(line)]
    assert any(" CallRinging " in line for line in events), out
    assert any(" CallEnded " in line for line in events), out
    assert re.search(r"── call \S+ ended \(\w+", out), out
    summary = re.search(r"demo stopped: (\d+) events delivered, (\d+) calls ended\.", out)
    assert summary and int(summary.group(1)) == len(events) and int(summary.group(2)) >= 1
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
        while " CallRinging " not in seen and time.monotonic() < deadline:
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


def test_demo_delivers_calls_over_ajam_when_transport_is_http():
    import io

    from bridge.testing.demo import run_demo as run_demo_in_process

    out = io.StringIO()
    assert run_demo_in_process(duration_s=4, calls_per_minute=60, transport="http", out=out) == 0
    text = out.getvalue()
    assert re.search(r"Asterisk simulator \(asterisk20\)  AJAM http://127\.0\.0\.1:\d+/asterisk/rawman", text)
    assert re.search(r"CallRinging +call \S+ +20\d", text), text[-800:]
