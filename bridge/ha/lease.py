"""ALL high-availability SQL: the `ha_lease` rows (one per AMI server) on PostgreSQL.

Theory of operation
- A lease row names the node that may write one server's events, a fencing `token` that grows
  by one at every takeover, and `expires_at`. Every time is PostgreSQL's clock_timestamp(), so
  the nodes' clocks never matter (and not now(), which is the transaction's start).
- The leader renews every renew_s (extending expires_at by lease_s); a standby takes the row
  over only once expires_at has passed (token + 1). A node that was paused or cut off from the
  database keeps its old token, and `guard` refuses its commit: the check runs inside the
  outbox insert transaction and takes FOR SHARE on the lease rows, so a takeover (an UPDATE of
  the row) waits until that commit is done, and a commit after a takeover sees the new token.
- A lease row and not a session advisory lock: a SIGSTOPped process keeps its TCP connection,
  and with it an advisory lock, forever; a lease simply runs out.
- lock_timeout keeps a takeover attempt from queueing behind a commit that holds FOR SHARE, and
  idle_in_transaction_session_timeout (db engines, bridge.ha.node) ends a transaction whose
  process froze while holding it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.engine import Connection

from bridge.errors import NotLeader

ACQUIRE_LOCK_TIMEOUT_MS = 500


@dataclass(frozen=True)
class Lease:
    server: str
    node: str
    token: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    handover: bool
    now: datetime          # the database's clock when read

    @property
    def live(self) -> bool:
        return self.expires_at > self.now


# -- acquire: take `server` for `node` if nobody holds a live lease; the new token, else None.
def acquire(conn: Connection, server: str, node: str, lease_s: float) -> int | None:
    free = conn.execute(text("SELECT expires_at < clock_timestamp() FROM ha_lease WHERE server = :s"),
                        {"s": server}).scalar()
    if free is False:   # a live lease: do not even queue for its row lock
        return None
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ACQUIRE_LOCK_TIMEOUT_MS}")
    return conn.execute(text(
        "INSERT INTO ha_lease (server, node, token, acquired_at, renewed_at, expires_at, handover) "
        "VALUES (:s, :n, 1, clock_timestamp(), clock_timestamp(), "
        "        clock_timestamp() + make_interval(secs => :lease), false) "
        "ON CONFLICT (server) DO UPDATE SET node = EXCLUDED.node, token = ha_lease.token + 1, "
        "  acquired_at = EXCLUDED.acquired_at, renewed_at = EXCLUDED.renewed_at, "
        "  expires_at = EXCLUDED.expires_at, handover = false "
        "WHERE ha_lease.expires_at < clock_timestamp() "
        "RETURNING token"), {"s": server, "n": node, "lease": lease_s}).scalar()


# -- renew: extend `node`'s live lease on `server`; None if lost, else whether a handover is asked.
def renew(conn: Connection, server: str, node: str, token: int, lease_s: float) -> bool | None:
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ACQUIRE_LOCK_TIMEOUT_MS}")
    return conn.execute(text(
        "UPDATE ha_lease SET renewed_at = clock_timestamp(), "
        "  expires_at = clock_timestamp() + make_interval(secs => :lease) "
        "WHERE server = :s AND node = :n AND token = :t AND expires_at > clock_timestamp() "
        "RETURNING handover"), {"s": server, "n": node, "t": token, "lease": lease_s}).scalar()


# -- release: end `node`'s lease on `server` now, so a standby takes over at its next poll.
def release(conn: Connection, server: str, node: str, token: int) -> bool:
    return conn.execute(text(
        "UPDATE ha_lease SET expires_at = clock_timestamp() - interval '1 millisecond', handover = false "
        "WHERE server = :s AND node = :n AND token = :t AND expires_at > clock_timestamp()"),
        {"s": server, "n": node, "t": token}).rowcount == 1


# -- request_handover: ask the leaders of `servers` (all when None) to step down; the leases asked.
def request_handover(conn: Connection, servers: Iterable[str] | None = None) -> list[tuple[str, str]]:
    sql = ("UPDATE ha_lease SET handover = true WHERE expires_at > clock_timestamp()"
           + ("" if servers is None else " AND server = ANY(:servers)") + " RETURNING server, node")
    params = {} if servers is None else {"servers": list(servers)}
    return sorted((r.server, r.node) for r in conn.execute(text(sql), params))


# -- guard: raise NotLeader unless `node` holds a live lease with the given token for each server;
#    locks those rows FOR SHARE until the transaction ends (run last, inside the insert transaction).
def guard(conn: Connection, node: str, held: Mapping[str, int | None], servers: Iterable[str]) -> None:
    wanted = sorted(set(servers))
    if not wanted:
        return
    rows = conn.execute(text(
        "SELECT server, token FROM ha_lease WHERE server = ANY(:servers) AND node = :n "
        "AND expires_at > clock_timestamp() FOR SHARE"), {"servers": wanted, "n": node})
    live = {r.server: r.token for r in rows}
    lost = [s for s in wanted if held.get(s) is None or live.get(s) != held[s]]
    if lost:
        raise NotLeader(lost)


# -- reap: end other nodes' HA sessions stuck inside a transaction for longer than `older_than_s`
#    (a frozen leader's uncommitted insert would make the new leader's insert of the same ids wait).
def reap(conn: Connection, prefix: str, mine: str, older_than_s: float) -> list[str]:
    rows = conn.execute(text(
        "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE starts_with(application_name, :prefix) AND application_name <> :mine "
        "AND state LIKE 'idle in transaction%' "
        "AND state_change < clock_timestamp() - make_interval(secs => :age)"),
        {"prefix": prefix, "mine": mine, "age": older_than_s})
    return [r.application_name for r in rows]


# -- leases: every lease row with the database's clock, for `status`.
def leases(conn: Connection) -> list[Lease]:
    rows = conn.execute(text(
        "SELECT server, node, token, acquired_at, renewed_at, expires_at, handover, "
        "clock_timestamp() AS now FROM ha_lease ORDER BY server"))
    return [Lease(r.server, r.node, r.token, r.acquired_at, r.renewed_at, r.expires_at, r.handover, r.now)
            for r in rows]
