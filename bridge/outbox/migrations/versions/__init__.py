"""Alembic revisions, named NNNN_<what>.py; a released revision is never edited."""
