"""The job store's tables: ``jobs``, ``workflows`` and ``queue_log``.

Times are timezone-aware UTC datetimes in Python on every database
(:class:`UtcDateTime`); SQLite keeps them as ISO text, PostgreSQL as
``timestamptz``. ``state_key`` is the recorder's merge key (see
:mod:`pipeline.store.states`): a row only ever moves to a state whose key is
greater, which is what makes replayed and reordered events harmless.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names Alembic can find again (batch mode on SQLite needs them).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON on SQLite, JSONB (indexable, ``@>``) on PostgreSQL.
JsonValue = JSON().with_variant(JSONB(), "postgresql")
#: An autoincrementing 64-bit key; SQLite only autoincrements ``INTEGER``.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ID_LENGTH = 255
TEXT_LIMIT = 4000


class UtcDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and always returned timezone-aware in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; naive on SQLite so every stored text compares in order."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            return moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Job(Base):
    """One job (a Celery task id) and where it stands."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    task: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    args: Mapped[str | None] = mapped_column(
        Text, doc="The call's positional arguments as JSON text (cut when long).")
    kwargs: Mapped[str | None] = mapped_column(
        Text, doc="The call's keyword arguments as JSON text (cut when long).")
    user: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    project: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    models: Mapped[list[str] | None] = mapped_column(JsonValue)
    priority: Mapped[int | None] = mapped_column(SmallInteger, doc="0 (critical) .. 9 (low).")
    state: Mapped[str] = mapped_column(String(16))
    state_key: Mapped[int] = mapped_column(BigInteger, doc="Merge key of ``state``.")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    blocked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="First parked.")
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="First started.")
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    runtime: Mapped[float | None] = mapped_column(Float, doc="Seconds of the last attempt.")
    worker_host: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[str | None] = mapped_column(
        Text, doc="The return value as JSON text (cut when long).")
    error: Mapped[str | None] = mapped_column(Text, doc="Last error, also while retrying.")
    blocked_by_job_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    conflict_reason: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    pool: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), doc="The agent pool it was published to (None: a Celery worker's).")
    agent: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), doc="The agent that claimed it last (a pool job).")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="Time of the latest event.")
    last_event_id: Mapped[str | None] = mapped_column(
        String(32), doc="Stream id of the event that set ``state``.")

    __table_args__ = (
        Index(None, "state", "priority"),
        Index(None, "user"),
        Index(None, "project"),
        Index(None, "queued_at"),
        Index(None, "started_at"),
        Index(None, "finished_at"),
        Index(None, "workflow_id"),
        Index(None, "pool"),
    )

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.state} attempts={self.attempts}>"


class Workflow(Base):
    """A chain or ``workflow(...)``: steps that hold one set of resources together."""

    __tablename__ = "workflows"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    steps: Mapped[list[str] | None] = mapped_column(JsonValue, doc="Task names in order.")
    state: Mapped[str] = mapped_column(String(16), doc="Derived from its steps' states.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index(None, "state"),)

    def __repr__(self) -> str:
        return f"<Workflow {self.id} {self.name} {self.state}>"


class QueueLog(Base):
    """One event of the audit log; rows are only ever inserted (and expired)."""

    __tablename__ = "queue_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(
        String(32), unique=True, doc="Redis stream entry id: makes a replay a no-op.")
    event: Mapped[str] = mapped_column(String(20))
    job_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="Time of the event.")
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)

    __table_args__ = (
        Index(None, "created_at"),
        Index(None, "job_id"),
        Index(None, "event", "created_at"),
    )

    def __repr__(self) -> str:
        return f"<QueueLog {self.stream_id} {self.event} {self.job_id}>"
