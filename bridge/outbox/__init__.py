"""The durable event outbox: schema, group-commit ingest, dispatcher, admin (payload format and
transport are handed in: bridge.erp)."""

from bridge.outbox.db import check_schema, make_engine, upgrade
from bridge.outbox.dispatcher import Dispatcher
from bridge.outbox.ingest import OutboxWriter
from bridge.outbox.models import DEAD, DELIVERED, PENDING, OutboxRow
from bridge.outbox.queries import ClaimedRow
from bridge.outbox.retry import RetryPolicy

__all__ = ["ClaimedRow", "DEAD", "DELIVERED", "Dispatcher", "OutboxRow", "OutboxWriter", "PENDING",
           "RetryPolicy", "check_schema", "make_engine", "upgrade"]
