"""Chaos: `python -m bridge run` SIGKILLed at random points mid-flood and restarted."""

from __future__ import annotations

import random
import time

from tests.chaos.audit import audit, outbox_rows, seq_of
from bridge.testing.helpers import wait_until
from tests.chaos.procs import BridgeProcess, write_config
from tests.chaos.rig import Rig, logged_in_after, newest_session, scale



class _ProcessRig(Rig):
    """The rig with the bridge in a child process instead of in-process."""

    def start_bridge(self) -> None:
        from bridge.outbox.db import upgrade

        upgrade(self.db_url)
        config = write_config(self.tmp_path / "bridge.toml", self.port, self.sink.url, self.db_url)
        self.bridge = BridgeProcess(config, self.tmp_path / "bridge.log")
        self.restart()

    def restart(self) -> None:
        before = newest_session(self.sim)
        self.bridge.start()
        assert wait_until(lambda: logged_in_after(self.sim, before), 20.0), self.log_tail()

    def stop_bridge(self) -> None:
        if getattr(self, "bridge", None) is not None:
            self.bridge.terminate()

    def log_tail(self) -> str:
        return self.bridge.log_tail()


def test_no_accepted_event_lost_when_bridge_is_sigkilled_at_random_points(tmp_path):
    kills = scale(3, 10)
    rng = random.Random(11)
    with _ProcessRig(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", rate_per_s=scale(500, 1500)) as rig:
        for _ in range(kills):
            time.sleep(rng.uniform(0.2, 1.5))          # mid-flood, mid-commit, mid-POST: anywhere
            rig.bridge.kill()
            time.sleep(rng.uniform(0.0, 0.3))
            rig.restart()
        rig.stream.stop()
        tail = rig.stream.emit_now(20)                 # the restarted bridge receives new events
        drained = rig.drain(tail)
        result = audit("bridge SIGKILL+restart", f"{kills} SIGKILLs", rig.db_url, rig.sink, rig.stream,
                       expect_all_offered=False)
        code = rig.bridge.terminate()
    accepted_seqs = {seq_of(r["payload"]) for r in outbox_rows(rig.db_url)}
    assert set(tail) <= accepted_seqs
    assert code == 0, rig.log_tail()
    assert drained, result.problems
    assert result.lost == 0 and not result.problems, result.problems
