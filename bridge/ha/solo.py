"""SQLite is single-node: a lock file beside the database, held for the process's lifetime.

Two processes on one SQLite outbox would both ingest every event of the same PBX (SQLite has no
leases to share it), so the second one is refused with the first one's pid and host. flock() is
released by the kernel when the holder dies, even by SIGKILL: a stale lock file never blocks.
"""

from __future__ import annotations

import fcntl
import os
import socket

from bridge.errors import OutboxInUse


class SoloLock:
    """flock(LOCK_EX | LOCK_NB) on `<database>.lock`; acquire() raises OutboxInUse when taken."""

    def __init__(self, database_path: str) -> None:
        self.path = database_path + ".lock"
        self._fd: int | None = None

    def acquire(self) -> "SoloLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise OutboxInUse(f"the SQLite outbox {self.path[:-5]} is in use by {holder}; SQLite is "
                              "single-node: stop that process, or use PostgreSQL to run several nodes "
                              "(docs/ha.md)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"asterisk-bridge pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # closing drops the flock
            self._fd = None
