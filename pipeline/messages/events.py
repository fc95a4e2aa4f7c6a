"""The job event: one record per state change, for the store, Flower and metrics.

Every state change of a job is written once to the Redis stream
``{pipeline}:events`` -- by the lock scripts themselves inside the same Lua call
where the change happens, or by :func:`emit` from Python for changes that have
no script (publish, retry, failure). An entry has four fields:

``e``  the event type (one of :data:`EVENT_TYPES`)
``j``  the job id (the Celery task id)
``t``  the time in milliseconds since the epoch (the Redis server clock for
       script events)
``d``  a JSON object with the details of that type (see :data:`DETAIL_FIELDS`)
``x``  (optional) a JSON object a lock script adds to ``d`` (the ``started``
       event's hold: holder, resources, token, host, pid), so a script never
       edits the JSON text a caller gave it

The recorder turns them into rows; metrics count them; :func:`to_celery_event`
gives the matching Celery event for Flower.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.locks.ticket import blocked_reason

QUEUED = "queued"
BLOCKED = "blocked"
CONFLICT = "conflict"
GRANTED = "granted"
STARTED = "started"
RETRIED = "retried"
COMPLETED = "completed"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
DEAD_LETTERED = "dead_lettered"
REPRIORITIZED = "reprioritized"
LOCK_LOST = "lock_lost"
RELEASED = "released"
#: An operator's action (flush, a lock released by hand, a dead letter requeued...):
#: ``d`` says which (``action``), by whom (``by``) and on what; the job id is the
#: job acted on, or empty for an action on the system.
OPERATOR = "operator"
#: What a maintenance step did (a sweep, a rescue, the load gate pausing or
#: resuming a worker); the job id is empty unless it concerns one job.
MAINTENANCE = "maintenance"

EVENT_TYPES: frozenset[str] = frozenset({
    QUEUED, BLOCKED, CONFLICT, GRANTED, STARTED, RETRIED, COMPLETED, FAILED, EXPIRED,
    CANCELLED, DEAD_LETTERED, REPRIORITIZED, LOCK_LOST, RELEASED, OPERATOR, MAINTENANCE,
})

#: Every ``action`` an ``operator`` event names (metrics export 0 for each).
OPERATOR_ACTIONS: tuple[str, ...] = ("flush", "lock_release", "dlq_requeue", "dlq_purge")
#: Every ``action`` a ``maintenance`` event names (metrics export 0 for each).
MAINTENANCE_ACTIONS: tuple[str, ...] = ("sweep", "set_aside", "gate_pause", "gate_resume")

#: What the ``d`` object of each type may carry (all optional). ``host`` is the host
#: that published the job (``queued``) or the worker host that parked or ran it.
DETAIL_FIELDS: Mapping[str, tuple[str, ...]] = {
    QUEUED: ("task", "priority", "user", "project", "models", "workflow", "args", "kwargs",
             "attempt",
             "host", "pool", "reason", "agent", "given_back"),
    BLOCKED: ("resource", "holder", "position", "reason", "priority", "workflow", "task",
              "host"),
    CONFLICT: ("resource", "holder", "reason", "priority"),
    GRANTED: ("holder", "resources"),
    STARTED: ("holder", "resources", "token", "host", "pid", "workflow", "task",
              "priority", "user", "project", "models", "attempt", "agent", "pool"),
    RETRIED: ("error", "countdown", "attempt", "lock_lost", "agent", "pool"),
    COMPLETED: ("result", "runtime", "lock_lost", "agent", "pool"),
    FAILED: ("error", "runtime", "lock_lost", "agent", "pool"),
    EXPIRED: ("reason", "waited"),
    CANCELLED: ("reason", "agent", "pool"),
    DEAD_LETTERED: ("error", "attempt", "agent", "pool"),
    REPRIORITIZED: ("priority", "previous"),
    LOCK_LOST: ("holder", "resources", "reason"),
    RELEASED: ("holder", "resources", "handed_to"),
    OPERATOR: ("action", "by", "target", "reason", "count"),
    MAINTENANCE: ("action", "worker", "reason", "count", "holds_dropped", "jobs_expired",
                  "lines_served", "jobs_rescued", "leases_expired"),
}

#: Celery event type sent to Flower for pipeline states Celery has no event for.
CELERY_EVENT_TYPES: Mapping[str, str] = {
    BLOCKED: "task-blocked",
    EXPIRED: "task-expired",
    CANCELLED: "task-revoked",
    DEAD_LETTERED: "task-dead-lettered",
    REPRIORITIZED: "task-reprioritized",
    LOCK_LOST: "task-lock-lost",
}


@dataclass(frozen=True)
class JobEvent:
    """One decoded stream entry."""

    type: str
    job_id: str
    time_ms: int
    detail: dict[str, Any] = field(default_factory=dict)
    stream_id: str = ""

    @property
    def time(self) -> float:
        """Seconds since the epoch."""
        return self.time_ms / 1000.0


class StreamWriter(Protocol):
    """The part of a redis-py client (or pipeline) :func:`emit` needs."""

    def xadd(self, name: Any, fields: Any, *args: Any, **kwargs: Any) -> Any: ...


def encode(event_type: str, job_id: str, detail: Mapping[str, Any] | None = None,
           time_ms: int | None = None) -> dict[str, str]:
    """The stream fields of one event."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type {event_type!r} is not one of {sorted(EVENT_TYPES)}")
    return {
        "e": event_type,
        "j": job_id,
        "t": str(int(time.time() * 1000) if time_ms is None else time_ms),
        "d": json.dumps(dict(detail or {}), separators=(",", ":"), default=str),
    }


def emit(client: StreamWriter, stream: str, event_type: str, job_id: str,
         detail: Mapping[str, Any] | None = None, *, maxlen: int = 1_000_000) -> None:
    """Append one event from Python (use a pipeline to batch several)."""
    client.xadd(stream, encode(event_type, job_id, detail), maxlen=maxlen, approximate=True)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


SUMMARY_LIMIT = 200
#: Compact JSON of an event's detail (one encoder: ``json.dumps`` with options
#: builds a new one on every call, and the job's path encodes a detail per job).
compact_json = json.JSONEncoder(separators=(",", ":"), default=str).encode


def summary(value: Any) -> str:
    """*value* as bounded text for an event's detail (``repr``, cut at 200 characters)."""
    text = repr(value)
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 3] + "..."


#: How much JSON of a job's arguments or return value an event carries.
JSON_LIMIT = 1000


def json_summary(value: Any, limit: int = JSON_LIMIT) -> str:
    """*value* as compact JSON text, for a job's ``args``, ``kwargs`` or ``result``.

    Longer than *limit* characters, its first ones followed by ``...`` (which no
    longer decodes as JSON: readers then show that text as a string).
    """
    text = compact_json(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"raw": raw}
    # Lua's cjson encodes an empty table as {} and cannot tell it from []: normalise.
    return value if isinstance(value, dict) else {}


def decode(stream_id: Any, fields: Mapping[Any, Any]) -> JobEvent:
    """Decode one stream entry as returned by XRANGE / XREADGROUP."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    detail = _object(text.get("d") or "{}")
    if "x" in text:
        detail.update(_object(text["x"]))
        if detail.get("resources") == {}:
            detail["resources"] = []
    etype = text.get("e", "")
    if etype in (BLOCKED, CONFLICT) and "reason" not in detail:
        resource, holder = detail.get("resource"), detail.get("holder")
        if isinstance(resource, str) and isinstance(holder, str):
            position = detail.get("position")
            detail["reason"] = blocked_reason(
                resource, holder, position if isinstance(position, int) else 0)
    return JobEvent(
        type=etype,
        job_id=text.get("j", ""),
        time_ms=int(float(text.get("t", "0"))),
        detail=detail,
        stream_id=_text(stream_id),
    )


def to_celery_event(event: JobEvent) -> tuple[str, dict[str, Any]] | None:
    """The Celery event (type, fields) matching *event*, for Flower; None if Celery sends it."""
    celery_type = CELERY_EVENT_TYPES.get(event.type)
    if celery_type is None:
        return None
    return celery_type, {"uuid": event.job_id, **event.detail}
