"""Chaos: the AMI server killed and restarted mid-flood, and an AMI link that stalls without closing."""

from __future__ import annotations

import random
import time

from tests.chaos.audit import audit, outbox_rows, seq_of
from bridge.testing.helpers import wait_until
from tests.chaos.rig import Rig, scale


def assert_clean(result, rig: Rig, tail_seqs: list[int]) -> None:
    accepted_seqs = {seq_of(r["payload"]) for r in outbox_rows(rig.db_url)}
    missing_tail = set(tail_seqs) - accepted_seqs
    assert not missing_tail, f"events sent after the link came back were not accepted: {sorted(missing_tail)[:5]}"
    assert result.lost == 0 and not result.problems, result.problems


def test_no_accepted_event_lost_when_ami_server_is_killed_and_restarted_mid_flood(tmp_path):
    restarts = scale(3, 12)
    rng = random.Random(7)
    with Rig(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", rate_per_s=scale(800, 2000)) as rig:
        for _ in range(restarts):
            time.sleep(rng.uniform(0.3, 1.0))               # mid-flood
            before = rig.client.stats.connects
            rig.kill_sim()
            time.sleep(rng.uniform(0.05, 0.5))              # down: these events are never received
            rig.restart_sim()
            assert wait_until(lambda: rig.client.stats.connects > before, 15.0), "no reconnect"
        tail = rig.check_link_receives()
        drained = rig.drain(tail)
        result = audit("ami server kill+restart", f"{restarts} restarts", rig.db_url, rig.sink, rig.stream,
                       expect_all_offered=False)
    assert drained, result.problems
    assert_clean(result, rig, tail)
    assert result.accepted > 0


def test_ping_timeout_fires_and_link_recovers_when_ami_stalls_without_closing(tmp_path):
    stalls = scale(1, 4)
    ami_kw = {"ping_interval_s": 0.3, "ping_timeout_s": 0.5}
    with Rig(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", rate_per_s=scale(500, 1500), ami_kw=ami_kw) as rig:
        for _ in range(stalls):
            time.sleep(0.5)
            timeouts = rig.client.stats.ping_timeouts
            rig.sim.stall()                                  # TCP stays open, nothing moves
            assert wait_until(lambda: rig.client.stats.ping_timeouts > timeouts, 10.0), "ping timeout never fired"
            before = rig.client.stats.connects
            rig.sim.resume()
            assert wait_until(lambda: rig.client.stats.connects > before, 15.0), "link did not recover"
        tail = rig.check_link_receives()
        drained = rig.drain(tail)
        result = audit("ami link stall", f"{stalls} stalls → ping timeout", rig.db_url, rig.sink, rig.stream,
                       expect_all_offered=False)
    assert drained, result.problems
    assert_clean(result, rig, tail)
