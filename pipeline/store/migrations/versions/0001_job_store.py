"""The job store: jobs, workflows and the queue log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the three tables and their indexes."""
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("task", sa.String(255), nullable=True),
        sa.Column("args", sa.Text(), nullable=True),
        sa.Column("user", sa.String(255), nullable=True),
        sa.Column("project", sa.String(255), nullable=True),
        sa.Column("models", JSON, nullable=True),
        sa.Column("priority", sa.SmallInteger(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_key", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued_at", TIME, nullable=True),
        sa.Column("blocked_at", TIME, nullable=True),
        sa.Column("started_at", TIME, nullable=True),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("runtime", sa.Float(), nullable=True),
        sa.Column("worker_host", sa.String(255), nullable=True),
        sa.Column("worker_pid", sa.Integer(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("blocked_by_job_id", sa.String(255), nullable=True),
        sa.Column("conflict_reason", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.String(255), nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("last_event_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    for columns in (["finished_at"], ["project"], ["queued_at"], ["started_at"],
                    ["state", "priority"], ["user"], ["workflow_id"]):
        op.create_index(op.f("ix_jobs_" + "_".join(columns)), "jobs", columns)

    op.create_table(
        "queue_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("stream_id", sa.String(32), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("job_id", sa.String(255), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("detail", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_log")),
        sa.UniqueConstraint("stream_id", name=op.f("uq_queue_log_stream_id")),
    )
    for columns in (["created_at"], ["event", "created_at"], ["job_id"]):
        op.create_index(op.f("ix_queue_log_" + "_".join(columns)), "queue_log", columns)

    op.create_table(
        "workflows",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("steps", JSON, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("started_at", TIME, nullable=True),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflows")),
    )
    op.create_index(op.f("ix_workflows_state"), "workflows", ["state"])


def downgrade() -> None:
    """Drop the three tables (their indexes go with them)."""
    op.drop_table("workflows")
    op.drop_table("queue_log")
    op.drop_table("jobs")
