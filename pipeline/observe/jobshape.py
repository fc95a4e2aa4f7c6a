"""One JSON shape of a job, for the CLI (``show --json``, ``jobs --json``) and the API.

:class:`JobOut` is a job as the store recorded it (``pipeline jobs --json``,
``GET /api/jobs``); :class:`JobView` is the same fields plus where the job is
now and why it is not running (``pipeline show --json``, ``GET /api/jobs/{id}``).
Both are built here and nowhere else (:func:`job_out`, :func:`job_view`), so a
script reads the same field the same way from either face:

- ``args``, ``kwargs`` and ``result`` are JSON values (the stored JSON text,
  decoded); text that is not JSON (cut because it was long, or written by an
  older release) is given as a string;
- ``priority`` is the level name (``critical``, ``high``, ``normal``, ``low``);
  no other field is named priority;
- ``runtime`` is filled for every finished job that started (finish - start
  when the worker did not report it);
- ``state`` is one of the job states of :mod:`pipeline.store.states`.

The reference page is ``docs/reference/job-schema.md``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, JsonValue

from pipeline.observe.inspection.job import JobDetail
from pipeline.priority import level_of
from pipeline.store import states

#: Where a job is, as the locks and the broker see it, and the state it means.
LIVE_STATES = {"queued": states.QUEUED, "parked": states.BLOCKED, "running": states.RUNNING,
               "granted": states.RUNNING, "between": states.RUNNING,
               "stopped": states.RUNNING, "delayed": states.QUEUED,
               "dead_letter": states.DEAD_LETTERED}
#: The result backend's states, as job states.
RESULT_STATES = {"SUCCESS": states.COMPLETED, "FAILURE": states.FAILED,
                 "REVOKED": states.CANCELLED, "STARTED": states.RUNNING,
                 "RETRY": states.QUEUED, "BLOCKED": states.BLOCKED, "PENDING": states.QUEUED}
#: Keys of an audit row's detail that hold a job's JSON text, or a priority 0-9.
_JSON_KEYS = ("args", "kwargs", "result")
_PRIORITY_KEYS = ("priority", "previous")


def json_value(text: Any) -> JsonValue:
    """Stored JSON text decoded; text that is not JSON is given back as it is."""
    if not isinstance(text, str):
        return text  # type: ignore[no-any-return]
    try:
        return json.loads(text)  # type: ignore[no-any-return]
    except ValueError:
        return text


def priority_name(value: Any) -> str | None:
    """``high`` for 3, ``normal`` for 4-6...; a name stays a name; None when unknown."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        return None
    return level_of(value).label


class JobOut(BaseModel):
    """A job as the job store recorded it."""

    id: str
    task: str | None = None
    state: str = Field(description="QUEUED, BLOCKED, RUNNING, COMPLETED, FAILED, "
                                   "DEAD_LETTERED, EXPIRED or CANCELLED")
    priority: str | None = Field(default=None,
                                 description="critical, high, normal or low")
    user: str | None = None
    project: str | None = None
    models: list[str] = []
    attempts: int = 0
    args: JsonValue = Field(default=None, description="Positional arguments (JSON).")
    kwargs: JsonValue = Field(default=None, description="Keyword arguments (JSON).")
    result: JsonValue = Field(default=None, description="The return value (JSON).")
    error: str | None = None
    queued_at: datetime | None = None
    blocked_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    runtime: float | None = Field(default=None, description="Seconds it ran.")
    worker_host: str | None = None
    worker_pid: int | None = None
    blocked_by_job_id: str | None = None
    conflict_reason: str | None = None
    workflow_id: str | None = None
    pool: str | None = Field(default=None, description="The agent pool it was published to.")
    agent: str | None = Field(default=None, description="The agent that claimed it last.")
    updated_at: datetime | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> JobOut:
        """From a stored row (:func:`pipeline.store.queries.job_dict`)."""
        return job_out(row)


class HistoryEntry(BaseModel):
    """One audit row (``args``, ``kwargs``, ``result`` decoded, priorities named)."""

    event: str
    job_id: str | None = None
    at: datetime | None = None
    detail: dict[str, Any] = {}


class JobView(JobOut):
    """One job wherever it is: its record, where it waits, why it is not running."""

    state: str = Field(description="QUEUED, BLOCKED or RUNNING from where it is now; else "
                                   "the store's state, else the result backend's")
    where: str = Field(description="running, granted, between, stopped, parked, queued, "
                                   "delayed, dead_letter, finished or elsewhere")
    why_not_running: str = Field(description="One line; empty while it runs.")
    place: int = Field(default=0, description="Its place in line (1 = next); 0: none.")
    holder: str = ""
    resources: list[str] = []
    waiting_for: str = ""
    blocked_by: str = ""
    host: str = ""
    pid: str = ""
    expires: float | None = Field(default=None,
                                  description="Lease deadline, seconds since the epoch.")
    result_state: str = "PENDING"
    recorded: bool = Field(default=False, description="The job store has a row for it.")
    history: list[HistoryEntry] = []
    dead_letter: dict[str, Any] | None = None
    live: bool = Field(default=True, description="Redis answered: where it is now is known.")


class JobPage(BaseModel):
    """One page of a filtered job list, most recently queued first."""

    total: int = Field(description="Jobs matching the filters, on every page.")
    limit: int
    offset: int
    jobs: list[JobOut]
    live: bool = Field(default=True, description="Redis answered (false: the store alone, "
                                                 "which may lag behind).")


def _runtime(row: dict[str, Any]) -> float | None:
    if row.get("runtime") is not None:
        return float(row["runtime"])
    started, finished = row.get("started_at"), row.get("finished_at")
    if not started or not finished:
        return None
    begin = started if isinstance(started, datetime) else datetime.fromisoformat(started)
    end = finished if isinstance(finished, datetime) else datetime.fromisoformat(finished)
    return max(0.0, (end - begin).total_seconds())


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    known = {name: row[name] for name in JobOut.model_fields if name in row}
    known.update(priority=priority_name(row.get("priority")), runtime=_runtime(row),
                 models=list(row.get("models") or []), attempts=row.get("attempts") or 0,
                 **{key: json_value(row.get(key)) for key in _JSON_KEYS})
    return known


def job_out(row: dict[str, Any]) -> JobOut:
    """The public shape of a stored row (:func:`pipeline.store.queries.job_dict`)."""
    return JobOut(**_fields(row))


def history_entry(row: dict[str, Any]) -> HistoryEntry:
    """An audit row (:func:`pipeline.store.queries.event_dict`) in the public shape."""
    detail = dict(row.get("detail") or {})
    for key in _JSON_KEYS:
        if key in detail:
            detail[key] = json_value(detail[key])
    for key in _PRIORITY_KEYS:
        if isinstance(detail.get(key), int):
            detail[key] = priority_name(detail[key])
    return HistoryEntry(event=row["event"], job_id=row.get("job_id"), at=row.get("at"),
                        detail=detail)


def view_state(detail: JobDetail) -> str:
    """The job state where the job is now says; else the store's; else the backend's."""
    live = LIVE_STATES.get(detail.where)
    if live is not None:
        return live
    if detail.record is not None:
        return str(detail.record["state"])
    return RESULT_STATES.get(detail.result_state, states.QUEUED)


def job_view(detail: JobDetail, *, live: bool = True) -> JobView:
    """The public shape of :func:`pipeline.observe.inspection.job_detail`'s answer.

    *live* False says Redis did not answer: only the store's part is known.
    """
    record = detail.record or {"id": detail.job_id}
    fields = _fields(record)
    fields.update(id=detail.job_id, state=view_state(detail),
                  priority=priority_name(detail.priority) or fields.get("priority"))
    return JobView(
        **fields, where=detail.where, why_not_running=detail.why, place=detail.place,
        holder=detail.holder, resources=list(detail.resources),
        waiting_for=detail.waiting_for, blocked_by=detail.blocked_by, host=detail.host,
        pid=detail.pid, expires=detail.expires, result_state=detail.result_state,
        recorded=detail.record is not None,
        history=[history_entry(row) for row in detail.history],
        dead_letter=None if detail.dead_letter is None else _named(detail.dead_letter),
        live=live)


def _named(entry: dict[str, Any]) -> dict[str, Any]:
    """A dead letter's dict with its priority named."""
    return {**entry, "priority": priority_name(entry.get("priority"))}


def shaped(model: BaseModel) -> dict[str, Any]:
    """*model* as the JSON-ready dict both faces print (times as ISO 8601 text)."""
    return model.model_dump(mode="json")
