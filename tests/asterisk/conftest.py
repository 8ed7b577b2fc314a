"""Session fixtures of the live suite: one Asterisk, one real bridge process, one ERP sink,
and every scenario of the matrix run at once (each test then checks its own story).

The suite is parametrized by the bridge's transport (`live[tcp]`, `live[http]`, `live[ari]`): the
same scenarios, the same hand-written stories, one Asterisk and one bridge per transport, one
after the other (pytest groups the tests by the session fixture's parameter). Which transports
run: BRIDGE_LIVE_TRANSPORT, a comma-separated list of tcp, http, digest, ari (default: all but digest).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from bridge.testing.fake_erp import FakeErp
from tests.ami.tcp_proxy import TcpProxy
from tests.asterisk.bridgeproc import BridgeProcess
from tests.asterisk.driver import AmiDriver
from tests.asterisk.live import Live
from tests.asterisk.pbx import DRIVER_SECRET, DRIVER_USER, Pbx, asterisk_dir
from tests.asterisk.scenarios import SCENARIOS, Scenario
from tests.asterisk.stories import line


SKIPPED: list[str] = []
TRANSPORTS = ("tcp", "http", "digest", "ari")
DEFAULT_TRANSPORTS = "tcp,http,ari"


def transports() -> list[str]:
    chosen = [t.strip() for t in os.environ.get("BRIDGE_LIVE_TRANSPORT", DEFAULT_TRANSPORTS).split(",") if t.strip()]
    unknown = sorted(set(chosen) - set(TRANSPORTS))
    if unknown or not chosen:
        raise pytest.UsageError(f"BRIDGE_LIVE_TRANSPORT={','.join(chosen)!r}: choose from {', '.join(TRANSPORTS)}")
    return chosen


def _require_asterisk() -> None:
    home = asterisk_dir()
    if (home / "run-asterisk.sh").exists():
        return
    reason = (f"no shared Asterisk at {home} (set BRIDGE_ASTERISK_DIR or put shared/asterisk beside "
              "the clone): the live call-story suite did not run")
    if os.environ.get("CI") == "true" or os.environ.get("BRIDGE_REQUIRE_ASTERISK") == "1":
        pytest.fail(reason + " — required under CI and by `make test-asterisk`", pytrace=False)
    if not SKIPPED:
        SKIPPED.append(reason)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter):
    # `make test` runs pytest -q, which hides skip reasons: say this one out loud.
    for reason in SKIPPED:
        terminalreporter.write_line(f"SKIPPED live Asterisk suite: {reason}", yellow=True, bold=True)


@pytest.fixture(scope="session", params=transports())
def live(request, tmp_path_factory):
    _require_asterisk()
    pbx = Pbx()
    sink = FakeErp()
    bridge = driver = proxy = None
    try:
        pbx.start()
        sink.start()
        http_port = pbx.http_port
        if request.param == "ari":
            # No CLI command closes an ARI WebSocket: the link runs through a loopback TCP proxy,
            # whose reset() is what `call-across-ami-reconnect` does to it (Live.kick_bridge).
            proxy = TcpProxy(("127.0.0.1", pbx.http_port)).start()
            http_port = proxy.port
        bridge = BridgeProcess(tmp_path_factory.mktemp(f"bridge-{request.param}"), pbx.ami_port, sink.url,
                               transport=request.param, http_port=http_port).start()
        driver = AmiDriver(pbx.ami_port, DRIVER_USER, DRIVER_SECRET)
        yield Live(pbx, driver, bridge, sink, proxy)
    finally:
        if driver is not None:
            driver.close()
        if bridge is not None:
            bridge.stop()
        if proxy is not None:            # after the bridge: its stop is no link loss
            proxy.stop()
        sink.stop()
        pbx.stop()


@dataclass
class Outcome:
    call_id: str | None = None
    originate_id: str | None = None
    events: list | None = None
    error: BaseException | None = None


def _play(live: Live, sc: Scenario) -> Outcome:
    out = Outcome()
    try:
        out.call_id, out.originate_id = sc.run(live)
        out.events = live.finished_story(out.call_id)
    except BaseException as exc:       # reported by the scenario's own test
        out.error = exc
        if out.call_id:
            out.events = live.story(out.call_id)
    return out


def _selected(session, transport: str) -> list[Scenario]:
    """The scenarios whose tests were collected for `transport` (so `-k queue` plays only those calls)."""
    names = {item.callspec.params["sc"].name for item in session.items
             if hasattr(item, "callspec") and "sc" in item.callspec.params
             and item.callspec.params.get("live") == transport}
    return [s for s in SCENARIOS if s.name in names]


@pytest.fixture(scope="session")
def outcomes(live, request):
    """Every selected scenario played once: the ones that share the link at the same time, then
    the ones that disturb it, one by one."""
    started = time.monotonic()
    results: dict[str, Outcome] = {}
    chosen = _selected(request.session, live.bridge.transport)
    together = [s for s in chosen if not s.alone]
    with ThreadPoolExecutor(max_workers=max(1, len(together))) as pool:
        futures = {s.name: pool.submit(_play, live, s) for s in together}
        for name, future in futures.items():
            results[name] = future.result()
    for s in chosen:
        if s.alone:
            results[s.name] = _play(live, s)
    report = os.environ.get("BRIDGE_LIVE_STORIES")      # one file per transport: <path>.<transport>
    if report:
        with open(f"{report}.{live.bridge.transport}", "w", encoding="utf-8") as fh:
            fh.write(f"# {len(results)} scenarios over {live.bridge.transport} in {time.monotonic() - started:.1f} s\n")
            for name, out in results.items():
                fh.write(f"{name} (CallId {out.call_id})\n")
                for e in out.events or []:
                    fh.write(f"  {line(e)}\n")
    return results
