"""Importing a pending-requests file (the JSON an earlier queue kept) as jobs.

The file is a JSON list of requests, or an object whose ``requests`` key holds
that list. Each request is an object with:

=============  ========  ===================================================
field          required  meaning
=============  ========  ===================================================
``id``         yes       the request id (text or a number): the job's id,
                         and what makes a second import of it a no-op
``type``       yes       what is asked: ``support_request``,
                         ``service_restart``, ``config_change`` ...
``status``     yes       ``approved`` or ``ready`` (enqueued), ``pending``
                         or ``pending_review`` (listed, not enqueued),
                         ``completed`` (skipped); any case
``text``       yes       the free text of the request (may be empty)
``user``       no        who asked: the job's user (one running job each)
``project``    no        the project it counts against
``priority``   no        1-10 (1 most urgent, the older queues' scale) or a
                         level name
``urgent``     no        true marks it urgent
``metadata``   no        an object, passed on untouched
=============  ========  ===================================================

Other fields are kept and passed on: the job gets the whole request object.

Priority: an urgency word (:data:`URGENT_WORDS`) in the text or the type, or
``urgent: true``, makes it critical; else a ``priority`` field decides (1-3
high, 4-7 normal, 8-10 low, or a level name); else an approved request is high
and any other normal.

A file with one malformed entry imports nothing; the error names the entry
and the field. Request ids already imported (kept in a Redis hash, for good)
are skipped, so importing a file twice enqueues nothing the second time.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import InvalidJobError, PipelineError
from pipeline.job.batch import enqueue_many
from pipeline.locks.resources import check_id, check_name
from pipeline.messages.record import Record
from pipeline.priority import Priority, from_seed_scale, level_of, parse_priority
from pipeline.runtime.services import Services

APPROVED, PENDING, COMPLETED = "approved", "pending", "completed"
#: Accepted ``status`` words and what each means.
STATUSES: dict[str, str] = {"approved": APPROVED, "ready": APPROVED, "pending": PENDING,
                            "pending_review": PENDING, "completed": COMPLETED}
REQUIRED = ("id", "type", "status", "text")
URGENT_WORDS = ("urgent", "emergency", "asap", "critical", "outage", "immediately")
_URGENT = re.compile(r"\b(" + "|".join(URGENT_WORDS) + r")\b", re.IGNORECASE)
#: What happens to a request (``action`` of :class:`Planned`).
ENQUEUE, LISTED, SKIPPED, DUPLICATE, IMPORTED = (
    "enqueue", "pending", "completed", "duplicate", "already imported")
BATCH = 500


@dataclass(frozen=True)
class Request:
    """One valid entry of the file."""

    index: int
    request_id: str
    type: str
    status: str
    text: str
    user: str | None
    project: str | None
    priority: int
    priority_reason: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class Planned(Record):
    """What the import does (or did) with one request.

    Attributes:
        request_id: the request (and job) id.
        type: what it asks for.
        status: ``approved``, ``pending`` or ``completed``.
        priority: the level it gets; ``priority_reason`` why.
        action: ``enqueue`` (``enqueued`` once done), ``pending`` (listed, not
            enqueued), ``completed`` (skipped), ``duplicate`` (the same entry
            again in the file) or ``already imported``.
        user: who asked.
    """

    request_id: str
    type: str
    status: str
    priority: str
    priority_reason: str
    action: str
    user: str = ""


@dataclass(frozen=True)
class ImportReport(Record):
    """The outcome of an import: what happened to each request."""

    file: str
    dry_run: bool
    task: str
    backup: str | None
    rows: tuple[Planned, ...] = field(default_factory=tuple)

    @property
    def counts(self) -> dict[str, int]:
        """Requests per action."""
        return dict(Counter(row.action for row in self.rows))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data, with the counts per action."""
        return {**super().as_dict(), "counts": self.counts}


def _fail(index: int, entry: Any, message: str) -> InvalidJobError:
    name = ""
    if isinstance(entry, dict) and isinstance(entry.get("id"), str | int):
        name = f" (id {str(entry['id'])!r})"
    return InvalidJobError(f"entry {index}{name}: {message}")


def detect_priority(entry: dict[str, Any], status: str) -> tuple[int, str]:
    """The priority of a request and why (see the module's rules).

    Raises:
        InvalidJobError: a ``priority`` or ``urgent`` field of the wrong kind.
    """
    urgent = entry.get("urgent", False)
    if not isinstance(urgent, bool):
        raise InvalidJobError(f"urgent={urgent!r} is not accepted: expected true or false")
    found = _URGENT.search(f"{entry.get('type', '')} {entry.get('text', '')}")
    if urgent:
        return int(Priority.CRITICAL), "marked urgent"
    if found:
        return int(Priority.CRITICAL), f"urgent word {found.group(1).lower()!r}"
    given = entry.get("priority")
    if given is not None:
        if isinstance(given, int) and not isinstance(given, bool):
            return from_seed_scale(given), f"priority {given} on the 1-10 scale"
        if isinstance(given, str):
            return int(level_of(parse_priority(given))), f"priority {given}"
        raise InvalidJobError(f"priority={given!r} is not accepted: expected an int 1-10 "
                              "(1 most urgent) or critical, high, normal or low")
    if status == APPROVED:
        return int(Priority.HIGH), "approved"
    return int(Priority.NORMAL), "default"


def _request(index: int, entry: Any) -> Request:
    if not isinstance(entry, dict):
        raise _fail(index, entry, f"expected an object, got {type(entry).__name__}")
    for name in REQUIRED:
        if name not in entry:
            raise _fail(index, entry, f"field {name!r} is missing (required: "
                                      f"{', '.join(REQUIRED)})")
    raw_id = entry["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise _fail(index, entry, f"id={raw_id!r} is not accepted: expected text or a number")
    try:
        request_id = check_id("id", str(raw_id))
        kind = check_name("type", entry["type"])
        status_word = entry["status"]
        if not isinstance(status_word, str) or status_word.lower() not in STATUSES:
            raise InvalidJobError(f"status={status_word!r} is not accepted: expected one of "
                                  f"{', '.join(STATUSES)}")
        status = STATUSES[status_word.lower()]
        if not isinstance(entry["text"], str):
            raise InvalidJobError(f"text={entry['text']!r} is not accepted: expected text")
        user = None if entry.get("user") is None else check_name("user", entry["user"])
        project = (None if entry.get("project") is None
                   else check_name("project", entry["project"]))
        if not isinstance(entry.get("metadata", {}), dict):
            raise InvalidJobError(f"metadata={entry['metadata']!r} is not accepted: expected "
                                  "an object")
        priority, why = detect_priority(entry, status)
    except PipelineError as exc:
        raise _fail(index, entry, str(exc)) from None
    return Request(index, request_id, kind, status, entry["text"], user, project, priority,
                   why, entry)


def read_requests(path: str | Path) -> list[Request]:
    """Read and check every entry of the file at *path*.

    Raises:
        InvalidJobError: the file is not JSON, not a list of requests, or an
            entry is malformed (naming the entry, its id and the field).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvalidJobError(f"{path} is not JSON: {exc}") from None
    except OSError as exc:
        raise InvalidJobError(f"{path} cannot be read: {exc.strerror}") from None
    entries = data.get("requests") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise InvalidJobError(f"{path} holds no requests: expected a JSON list of requests, "
                              "or an object whose 'requests' key holds that list")
    found = [_request(index, entry) for index, entry in enumerate(entries, start=1)]
    first: dict[str, Request] = {}
    for request in found:
        earlier = first.setdefault(request.request_id, request)
        if earlier is not request and earlier.raw != request.raw:
            raise _fail(request.index, request.raw,
                        f"id {request.request_id!r} repeats entry {earlier.index} with "
                        "different content (which one is meant?)")
    return found


def plan(services: Services, requests: Sequence[Request]) -> list[Planned]:
    """What an import of *requests* does, given the ids imported before (one read)."""
    ids = [r.request_id for r in requests]
    known = services.redis.hmget(services.keys.imported, ids) if ids else []
    seen: set[str] = set()
    rows = []
    for request, before in zip(requests, known, strict=True):
        if request.status == COMPLETED:
            action = SKIPPED
        elif request.request_id in seen:
            action = DUPLICATE
        elif before is not None:
            action = IMPORTED
        else:
            action = ENQUEUE if request.status == APPROVED else LISTED
        seen.add(request.request_id)
        rows.append(Planned(request.request_id, request.type, request.status,
                            level_of(request.priority).label, request.priority_reason, action,
                            request.user or ""))
    return rows


def _publish(services: Services, task: Any, batch: Sequence[Request], source: str) -> set[str]:
    """Claim the batch's ids, then publish the claimed ones; returns the ids published.

    An id another import claimed meanwhile is left to it. A publish that fails
    gives its claims back, so a later import can enqueue them.
    """
    record = json.dumps({"file": source, "at": time.time()})
    pipe = services.redis.pipeline(transaction=False)
    for request in batch:
        pipe.hsetnx(services.keys.imported, request.request_id, record)
    claimed = [r for r, new in zip(batch, pipe.execute(), strict=True) if new]
    signatures = []
    for request in claimed:
        options: dict[str, Any] = {"task_id": request.request_id, "priority": request.priority}
        if request.user is not None:
            options["user"] = request.user
        if request.project is not None:
            options["project"] = request.project
        signatures.append(task.s(request.raw).set(**options))
    try:
        enqueue_many(services.app, signatures)
    except BaseException:
        if claimed:
            services.redis.hdel(services.keys.imported, *[r.request_id for r in claimed])
        raise
    return {r.request_id for r in claimed}


def backup_file(path: str | Path) -> str:
    """Copy *path* beside itself as ``<name>.bak-<YYYYmmdd-HHMMSS>``; returns the copy's path."""
    source = Path(path)
    target = source.with_name(f"{source.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.copy2(source, target)
    return str(target)


def import_file(services: Services, path: str | Path, *, task_name: str, dry_run: bool = False,
                backup: bool = False,
                progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import the pending-requests file at *path*: approved requests become jobs of *task_name*.

    Args:
        services: the services of the Celery app.
        path: the JSON file (format in this module's docstring).
        task_name: the registered task each approved request is given to (its
            one argument is the request object).
        dry_run: only say what would happen.
        backup: copy the file first (not on a dry run).
        progress: called with (requests published, requests to publish).

    Raises:
        InvalidJobError: the file or an entry is malformed (nothing is
            imported), or *task_name* is not registered.
    """
    services.app.loader.import_default_modules()
    task = services.app.tasks.get(task_name)
    if task is None:
        raise InvalidJobError(f"task={task_name!r} is not registered with the app: pass the "
                              "task that handles requests (--task)")
    copy = backup_file(path) if backup and not dry_run else None
    requests = read_requests(path)
    rows = plan(services, requests)
    if dry_run:
        return ImportReport(str(path), True, task_name, None, tuple(rows))
    chosen = [r for r, row in zip(requests, rows, strict=True) if row.action == ENQUEUE]
    published: set[str] = set()
    for start in range(0, len(chosen), BATCH):
        published |= _publish(services, task, chosen[start:start + BATCH], str(path))
        if progress is not None:
            progress(min(start + BATCH, len(chosen)), len(chosen))
    done = tuple(
        row if row.action != ENQUEUE else
        Planned(**{**row.as_dict(), "action": "enqueued" if row.request_id in published
                   else IMPORTED})
        for row in rows)
    return ImportReport(str(path), False, task_name, copy, done)
