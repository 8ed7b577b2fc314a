"""Chaos over AJAM: the real bridge reads the simulator's HTTP manager while sessions expire, the
server stalls or restarts mid-flood; the same audit as the TCP scenarios (lost must be 0)."""

from __future__ import annotations

import random
import time

from bridge.config import AmiConfig, Config, DatabaseConfig

from tests.chaos.audit import audit
from bridge.testing.helpers import wait_until
from tests.chaos.rig import AMI_SECRET, FULL, Rig, scale, subscriber_config
from tests.chaos.test_ami_faults import assert_clean

# WaitEvent returns at once while events flow; an idle one after 1 s. A server silent for
# 1 s + ping_timeout (the stall margin) is stalled.
AJAM_KW = {"transport": "http", "wait_timeout_s": 1.0, "ping_timeout_s": 1.0, "connect_timeout_s": 1.0,
           "reconnect_base_s": 0.1, "reconnect_cap_s": 0.5}


def new_ajam_simulator(port: int = 0, http_port: int = 0):
    from bridge.testing.simulator import AmiSimulator

    return AmiSimulator("asterisk20", port=port, users={"bridge": AMI_SECRET}, http_port=http_port).start()


class AjamRig(Rig):
    """The chaos rig with the bridge's [[ami]] on AJAM (transport = "http", cookie auth)."""

    def __enter__(self) -> "AjamRig":
        from bridge.outbox.db import upgrade

        upgrade(self.db_url)
        sim = new_ajam_simulator()
        self.port, self.http_port = sim.port, sim.http_port
        self.holder.swap(sim)
        self.sink.start()
        self.start_bridge()
        self.stream.start()
        return self

    def config(self) -> Config:
        ami = AmiConfig(name="pbx1", username="bridge", secret=AMI_SECRET,
                        url=f"http://127.0.0.1:{self.http_port}/asterisk/", **AJAM_KW)
        return Config(database=DatabaseConfig(url=self.db_url), ami=(ami,),
                      subscribers=(subscriber_config(self.sink.url, **self.sub_kw),))

    def restart_sim(self) -> None:
        self.holder.swap(new_ajam_simulator(self.port, self.http_port))


def test_no_accepted_event_lost_when_ajam_sessions_expire_mid_flood(tmp_path):
    expiries = scale(2, 8)
    rng = random.Random(11)
    with AjamRig(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", rate_per_s=scale(500, 1500)) as rig:
        for _ in range(expiries):
            time.sleep(rng.uniform(0.3, 0.8))
            before = rig.client.stats.connects
            assert rig.sim.ajam.expire_sessions() == 1       # as httptimeout or a purge would
            assert wait_until(lambda: rig.client.stats.connects > before, 10.0), "no new login"
        tail = rig.check_link_receives()
        drained = rig.drain(tail)
        result = audit("ajam session expiry", f"{expiries} expired sessions", rig.db_url, rig.sink, rig.stream,
                       expect_all_offered=False)
    assert drained, result.problems
    assert_clean(result, rig, tail)


def test_every_offered_event_accepted_when_the_ajam_server_stalls_while_the_session_lives(tmp_path):
    stalls = scale(1, 4)
    with AjamRig(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", rate_per_s=scale(500, 1500)) as rig:
        for _ in range(stalls):
            time.sleep(0.5)
            before = rig.client.stats.connects
            rig.sim.stall()                                  # accepts, answers nothing; events queue
            assert wait_until(lambda: not rig.client.connected, 10.0), "the stall was not noticed"
            rig.sim.resume()
            assert wait_until(lambda: rig.client.stats.connects > before, 10.0), "link did not recover"
        tail = rig.check_link_receives()
        drained = rig.drain(tail)
        # The session lived through every stall, so nothing Asterisk queued may be missing.
        result = audit("ajam server stall", f"{stalls} stalls → read timeout", rig.db_url, rig.sink, rig.stream,
                       expect_all_offered=True)
    assert drained, result.problems
    assert_clean(result, rig, tail)


def test_no_accepted_event_lost_when_the_ajam_server_restarts_mid_flood(tmp_path):
    restarts = scale(1, 6)
    rng = random.Random(5)
    with AjamRig(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", rate_per_s=scale(500, 1500)) as rig:
        for _ in range(restarts):
            time.sleep(rng.uniform(0.3, 0.8))
            before = rig.client.stats.connects
            rig.kill_sim()
            time.sleep(rng.uniform(0.05, 0.3) if FULL else 0.05)
            rig.restart_sim()
            assert wait_until(lambda: rig.client.stats.connects > before, 15.0), "no login after the restart"
        tail = rig.check_link_receives()
        drained = rig.drain(tail)
        result = audit("ajam server restart", f"{restarts} restarts", rig.db_url, rig.sink, rig.stream,
                       expect_all_offered=False)
    assert drained, result.problems
    assert_clean(result, rig, tail)
