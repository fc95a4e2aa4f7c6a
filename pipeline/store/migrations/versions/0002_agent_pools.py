"""Jobs run by agents: the pool a job was published to and the agent that claimed it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``jobs.pool`` (indexed) and ``jobs.agent``."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("pool", sa.String(255), nullable=True))
        batch.add_column(sa.Column("agent", sa.String(255), nullable=True))
        batch.create_index(batch.f("ix_jobs_pool"), ["pool"])


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index(batch.f("ix_jobs_pool"))
        batch.drop_column("agent")
        batch.drop_column("pool")
