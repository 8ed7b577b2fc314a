"""Alembic migrations for the outbox, shipped inside the package so `db upgrade` finds them installed."""
