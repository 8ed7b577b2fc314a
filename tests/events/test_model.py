"""bridge/events/model.py: event ids."""

from __future__ import annotations

import os
import uuid

from bridge.events.model import new_event_uuid


def test_event_ids_are_version4_uuids_and_unique_when_many_are_made():
    ids = [new_event_uuid() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert str(parsed) == ids[0] and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_forked_child_draws_other_ids_than_its_parent_when_forked():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next ids and leave without running pytest's teardown
        os.write(write_end, " ".join(new_event_uuid() for _ in range(5)).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child = set(os.read(read_end, 4096).decode().split())
    os.close(read_end)
    parent = {new_event_uuid() for _ in range(5)}
    assert len(child) == 5 and not child & parent
