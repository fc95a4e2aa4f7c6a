"""Writing a batch of events to the store in one transaction.

A batch becomes three statements however many events it holds: the queue-log
rows (``ON CONFLICT (stream_id) DO NOTHING``), one upsert row per workflow and
one upsert row per job, the events of a job folded together first with the
merge policies of :mod:`pipeline.store.states`, which the upsert's ``DO
UPDATE`` clause renders as SQL. Replaying a batch therefore changes nothing.
Rows are written in key order so that two recorders never deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pipeline.errors import StoreError
from pipeline.messages import events
from pipeline.messages.events import JobEvent
from pipeline.store import states
from pipeline.store.models import ID_LENGTH, TEXT_LIMIT, Job, QueueLog, Workflow
from pipeline.store.states import Policy

_JOB_TABLE: Table = Job.__table__  # type: ignore[assignment]
_WORKFLOW_TABLE: Table = Workflow.__table__  # type: ignore[assignment]
_LOG_TABLE: Table = QueueLog.__table__  # type: ignore[assignment]


def utc(time_ms: float) -> datetime:
    """The aware UTC datetime of *time_ms* milliseconds since the epoch."""
    return datetime.fromtimestamp(time_ms / 1000.0, tz=timezone.utc)


def summary(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    """*value* as bounded text for a summary column (JSON unless it is a string)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _name(value: Any) -> str | None:
    return summary(value, ID_LENGTH) if value not in (None, "") else None


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _priority(value: Any) -> int | None:
    number = _int(value)
    return number if number is not None and 0 <= number <= 9 else None


def _models(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return sorted({str(m) for m in value if m not in (None, "")})


def _describe(change: dict[str, Any], event: JobEvent) -> None:
    """Fill what ``queued`` and ``started`` say about the job itself."""
    d = event.detail
    change.update(task=_name(d.get("task")), user=_name(d.get("user")),
                  project=_name(d.get("project")), models=_models(d.get("models")),
                  workflow_id=_name(d.get("workflow")), priority=_priority(d.get("priority")),
                  args=summary(d.get("args")), kwargs=summary(d.get("kwargs")),
                  attempts=_int(d.get("attempt")) or 1,
                  pool=_name(d.get("pool")), agent=_name(d.get("agent")))


def job_change(event: JobEvent) -> dict[str, Any] | None:
    """The ``jobs`` row one event asks for (every merged column), or None (log only)."""
    kind, d = event.type, event.detail
    if not event.job_id or (kind not in states.EVENT_STATE and kind != events.REPRIORITIZED):
        return None
    at = utc(event.time_ms)
    change: dict[str, Any] = dict.fromkeys(states.JOB_POLICIES)
    change.update(id=event.job_id, state=states.EVENT_STATE.get(kind, states.QUEUED),
                  state_key=states.state_key(kind, event.time_ms), attempts=0,
                  updated_at=at, last_event_id=event.stream_id)
    if kind == events.QUEUED:
        _describe(change, event)
        change["queued_at"] = at
    elif kind == events.STARTED:
        _describe(change, event)
        queued_at = d.get("queued_at")
        if isinstance(queued_at, (int, float)) and not isinstance(queued_at, bool):
            change["queued_at"] = utc(queued_at * 1000.0)
        change.update(started_at=at, worker_host=_name(d.get("host")),
                      worker_pid=_int(d.get("pid")))
    elif kind in (events.BLOCKED, events.CONFLICT):
        change.update(blocked_at=at, blocked_by_job_id=_name(d.get("holder")),
                      conflict_reason=summary(d.get("reason")),
                      priority=_priority(d.get("priority")))
    elif kind == events.REPRIORITIZED:
        change["priority"] = _priority(d.get("priority"))
    elif kind == events.RETRIED:
        attempt = _int(d.get("attempt"))
        change.update(error=summary(d.get("error")), attempts=attempt + 1 if attempt else 0)
    else:  # terminal
        runtime = d.get("runtime")
        change.update(finished_at=at, result=summary(d.get("result")),
                      error=summary(d.get("error") or d.get("reason")),
                      runtime=float(runtime) if isinstance(runtime, (int, float)) else None,
                      attempts=_int(d.get("attempt")) or 0)
    return change


def workflow_change(event: JobEvent) -> dict[str, Any] | None:
    """The ``workflows`` row an event of one of its steps asks for, or None."""
    workflow_id = _name(event.detail.get("workflow"))
    if workflow_id is None:
        return None
    steps = event.detail.get("workflow_steps")
    at = utc(event.time_ms)
    return {"id": workflow_id, "name": _name(event.detail.get("workflow_name")),
            "steps": [str(s) for s in steps] if isinstance(steps, list) else None,
            "created_at": at, "updated_at": at, "state": states.QUEUED}


def log_row(event: JobEvent) -> dict[str, Any]:
    """The ``queue_log`` row of one event."""
    return {"stream_id": event.stream_id, "event": event.type[:20],
            "job_id": event.job_id[:ID_LENGTH] or None,
            "created_at": utc(event.time_ms), "detail": event.detail}


@dataclass
class Batch:
    """The rows a batch of events writes: one per log entry, job and workflow."""

    log: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, event: JobEvent) -> None:
        """Add one event, folding it into the rows of its job and workflow."""
        self.log.append(log_row(event))
        for change, rows, policies in (
            (job_change(event), self.jobs, states.JOB_POLICIES),
            (workflow_change(event), self.workflows, states.WORKFLOW_POLICIES),
        ):
            if change is not None:
                old = rows.get(change["id"])
                rows[change["id"]] = change if old is None else states.merge(old, change, policies)


def fold(batch_events: Iterable[JobEvent]) -> Batch:
    """The rows of *batch_events*, folded in event-time order."""
    batch = Batch()
    for event in sorted(batch_events, key=lambda e: (e.time_ms, e.stream_id)):
        batch.add(event)
    return batch


def _merged(policy: Policy, old: ColumnElement[Any], new: ColumnElement[Any],
            table: Table, excluded: Any) -> ColumnElement[Any]:
    """SQL of :func:`states.merge` for one column (``old`` stored, ``new`` excluded)."""
    if policy is Policy.WINNER:
        return case((excluded.state_key > table.c.state_key, new), else_=old)
    if policy is Policy.FIRST:
        return func.coalesce(old, new)
    if policy is Policy.LATEST:
        newer = and_(new.is_not(None), excluded.updated_at >= table.c.updated_at)
        return case((newer, new), else_=func.coalesce(old, new))
    better = new < old if policy is Policy.MIN else new > old
    return case((new.is_(None), old), (old.is_(None) | better, new), else_=old)


def _insert(session: Session, table: Table) -> Any:
    """``INSERT`` of *table* in the session's dialect, which has ``ON CONFLICT``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"the job store supports SQLite and PostgreSQL, not {dialect}")


def _upsert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]],
            policies: Mapping[str, Policy]) -> None:
    stmt = _insert(session, table)
    set_ = {col: _merged(policy, table.c[col], stmt.excluded[col], table, stmt.excluded)
            for col, policy in policies.items()}
    session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=set_), list(rows))


def _insert_log(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    session.execute(_insert(session, _LOG_TABLE).on_conflict_do_nothing(
        index_elements=["stream_id"]), list(rows))


def refresh_workflows(session: Session, job_ids: Sequence[str]) -> None:
    """Derive the state and times of the workflows the jobs *job_ids* are steps of."""
    if not job_ids:
        return
    workflow_ids = sorted(w for w in session.scalars(
        select(Job.workflow_id).distinct()
        .where(Job.id.in_(job_ids), Job.workflow_id.is_not(None))) if w is not None)
    if not workflow_ids:
        return
    # Lock the rows first, so a second recorder's refresh waits and then sees our steps.
    steps = {workflow_id: listed for workflow_id, listed in session.execute(
        select(Workflow.id, Workflow.steps).where(Workflow.id.in_(workflow_ids))
        .order_by(Workflow.id).with_for_update())}
    rows = session.execute(
        select(Job.workflow_id, Job.state, func.count(), func.min(Job.started_at),
               func.max(Job.finished_at))
        .where(Job.workflow_id.in_(workflow_ids)).group_by(Job.workflow_id, Job.state))
    counts: dict[str, dict[str, int]] = {}
    started: dict[str, list[datetime]] = {}
    finished: dict[str, list[datetime]] = {}
    for step_of, state, count, first_start, last_finish in rows:
        workflow_id = str(step_of)
        counts.setdefault(workflow_id, {})[state] = count
        if first_start is not None:
            started.setdefault(workflow_id, []).append(first_start)
        if last_finish is not None:
            finished.setdefault(workflow_id, []).append(last_finish)
    params = []
    for workflow_id, by_state in counts.items():
        listed = steps.get(workflow_id)
        state = states.workflow_state(by_state, len(listed) if listed else None)
        params.append({
            "b_id": workflow_id, "state": state,
            "started_at": min(started[workflow_id]) if workflow_id in started else None,
            "finished_at": max(finished[workflow_id])
            if state in states.TERMINAL and workflow_id in finished else None})
    if params:
        session.execute(
            update(_WORKFLOW_TABLE).where(_WORKFLOW_TABLE.c.id == bindparam("b_id")), params)


def write(session: Session, batch_events: Sequence[JobEvent]) -> Batch:
    """Write *batch_events* in the session's transaction (the caller commits).

    Returns:
        The folded rows, for the caller's counters.
    """
    batch = fold(batch_events)
    if batch.log:
        _insert_log(session, sorted(batch.log, key=lambda r: r["stream_id"]))
    if batch.workflows:
        _upsert(session, _WORKFLOW_TABLE, [batch.workflows[k] for k in sorted(batch.workflows)],
                states.WORKFLOW_POLICIES)
    if batch.jobs:
        job_ids = sorted(batch.jobs)
        _upsert(session, _JOB_TABLE, [batch.jobs[k] for k in job_ids], states.JOB_POLICIES)
        refresh_workflows(session, job_ids)
    return batch
