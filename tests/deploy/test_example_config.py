"""bridge.example.toml as shipped (only addresses and secrets filled in) delivers simulator calls."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

from bridge.calls.reach import analyse
from bridge.config_load import load_config, parse_config

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "bridge.example.toml"
AMI_SECRET = "example-secret-41"


def test_example_config_delivers_simulated_calls_to_its_subscriber(tmp_path):
    from bridge.testing.simulator import AmiSimulator
    from bridge.testing.fake_erp import FakeErp
    from bridge.runtime import Runtime

    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    with AmiSimulator("asterisk20", users={"bridge": AMI_SECRET}, time_scale=0.02) as sim, \
            FakeErp() as sink:
        # Where things are on this machine; every filter key stays as shipped.
        data["database"]["url"] = f"sqlite:///{tmp_path / 'outbox.db'}"
        data["ami"][0]["port"] = sim.port
        data["subscriber"][0]["url"] = sink.url
        data["soap"]["listen"] = "127.0.0.1:0"
        data["metrics"]["listen"] = "127.0.0.1:0"
        config = parse_config(data, env={"AMI_SECRET": AMI_SECRET, "SOAP_PASSWORD": "pw-example"},
                              check_subscriber=analyse)
        runtime = Runtime(config, auto_upgrade=True, drain_timeout_s=5.0)
        runtime.start()
        try:
            deadline = time.monotonic() + 20.0
            while runtime.health_problems() and time.monotonic() < deadline:
                time.sleep(0.05)              # logged in: the call's first event is not missed
            assert runtime.health_problems() == []
            sim.run_scenario("answered", caller="202", callee="902", wait=True)
            assert sink.wait_for(lambda s: any(b"CallEnded" in r.body for r in s.delivered()), 20.0)
        finally:
            runtime.stop()
    names = [r.body.split(b"<m:name>")[1].split(b"</m:name>")[0] for r in sink.delivered()]
    calls = [n for n in names if n.startswith(b"Call")]
    assert calls[0] == b"CallRinging" and b"CallAnswered" in calls and calls[-1] == b"CallEnded", names
    # Normalized subscribers get both link events. LinkUp and the call are different order_keys, so
    # two workers may deliver them in either order; LinkDown follows the stop, after everything else.
    assert names.count(b"LinkUp") == 1 and names[-1] == b"LinkDown"
    assert config.warnings == ()


def test_example_config_checks_ok_with_an_absolute_sqlite_path():
    config = load_config(EXAMPLE, env={"AMI_SECRET": "a", "SOAP_PASSWORD": "b"}, check_subscriber=analyse)
    assert config.database.url == "sqlite:////var/lib/asterisk-bridge/outbox.db"
    assert config.warnings == ()
