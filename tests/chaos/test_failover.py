"""Chaos: three `python -m bridge run` processes on one PostgreSQL outbox, the leader killed,
paused and stopped mid-flood (issue 15). Nothing the simulator sent while a node listened may be
lost, no AMI event may reach the ERP under two ids, and each call keeps its order.

The handover gaps (the old leader's last commit → the new leader's first) are figures, printed
in the chaos summary (and BRIDGE_CHAOS_SUMMARY), not assertions.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.chaos.audit import audit
from tests.chaos.ha_audit import GAPS, GapSummary, delivered_seqs, double_ids, writer_switches
from tests.chaos.ha_rig import Cluster
from tests.chaos.rig import scale


# Three interpreters start, and each failover waits a lease (3 s) out: ~80 s short, ~4 min full.
@pytest.mark.timeout(scale(300, 900))
def test_no_event_lost_or_doubled_when_the_leader_is_killed_paused_and_stopped(tmp_path, pg_url):
    kills = scale(2, 12)
    rng = random.Random(15)
    with Cluster(tmp_path, pg_url, size=3, rate_per_s=scale(300, 500), seed=15,
                 timestamps=True) as rig:       # timestampevents = yes, as docs/ha.md asks
        cluster = rig.cluster
        for _ in range(kills):
            time.sleep(rng.uniform(0.3, 1.5))          # mid-flood, whatever the leader is doing
            cluster.sigkill_leader()
        time.sleep(1.0)
        paused, before_cont, after_cont = cluster.sigstop_leader(hold_after_takeover_s=1.0, settle_s=scale(2.0, 5.0))
        time.sleep(1.0)
        graceful, term_code = cluster.sigterm_leader()
        time.sleep(1.0)
        leaders = cluster.metrics_leaders()
        rig.stream.stop()
        tail = rig.stream.emit_now(20)                 # the cluster still listens after all of it
        drained = rig.drain()
        scenario = "HA: 3 nodes, leader faults"
        result = audit(scenario, f"{kills} SIGKILL, 1 SIGSTOP, 1 SIGTERM", rig.db_url, rig.sink, rig.stream,
                       expect_all_offered=True)
        doubled = double_ids(rig.sink)
        missing = set(rig.stream.matched_offered) - delivered_seqs(rig.sink)
        commits = cluster.log.since()
        GAPS.append(GapSummary(scenario, list(cluster.failovers), writer_switches(commits)))
        logs = cluster.logs()
    assert drained, result.problems + [logs]
    assert not missing, f"{len(missing)} event(s) sent to a listening cluster never delivered, " \
                        f"e.g. ChaosSeq {sorted(missing)[:5]}"
    assert not doubled, f"{len(doubled)} AMI event(s) delivered under several ids, e.g. {list(doubled.items())[:3]}"
    assert result.lost == 0 and not result.problems, result.problems
    assert set(tail) <= delivered_seqs(rig.sink)
    assert after_cont == before_cont, (f"{paused.old} committed {after_cont - before_cont} row(s) after it "
                                       f"resumed from SIGSTOP past its lease")
    assert term_code == 0, f"{graceful.old} exited {term_code} on SIGTERM"
    assert len(leaders) == 1, f"/metrics bridge_ami_leader{{server=\"pbx1\"}} = 1 on {leaders}"
    assert all(f.new is not None for f in cluster.failovers), cluster.failovers
