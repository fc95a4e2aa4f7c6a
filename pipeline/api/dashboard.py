"""The web dashboard: one HTML page, one script, one stylesheet, and the data they poll.

No build step and nothing fetched from elsewhere at run time: the files ship in
the package (``pipeline/api/static``). The page itself holds no data and is
served without a token; everything it shows comes from the API (read scope):
``/api/dashboard`` every 2 s (running, parked, locks, workers, failures, dead
letters), ``/api/queued`` (the waiting jobs of one level, paged),
``/api/history`` and ``/api/stats`` (charts and statistics), ``/api/audit``,
and ``/api/jobs/{id}`` with ``/api/job-ids`` for the job page and the search
box. Action buttons show for an admin token only, and each asks first.

The routers of those reads that exist for the dashboard
(:mod:`~pipeline.api.history`, :mod:`~pipeline.api.queued`,
:mod:`~pipeline.api.lookup`) are included in this one.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import select

from pipeline.actions import deadletters
from pipeline.api import history, lookup, models, queued
from pipeline.api.deps import Reader, Svc, store_enabled, store_session
from pipeline.observe import inspection
from pipeline.observe.inspection.live import split_resource
from pipeline.runtime.services import Services
from pipeline.store import queries
from pipeline.store.models import Job

router = APIRouter(tags=["dashboard"])
for _reads in (history, queued, lookup):
    router.include_router(_reads.router)

STATIC_TYPES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
ROWS = 50


def _static(name: str) -> str:
    return resources.files("pipeline.api").joinpath("static", name).read_text("utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    """The dashboard page (no data in it: it asks the API)."""
    return HTMLResponse(_static("index.html"))


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    """The page's script and stylesheet."""
    if name not in STATIC_TYPES:
        raise HTTPException(404, f"{name} is not known")
    return Response(_static(name), media_type=STATIC_TYPES[name],
                    headers={"Cache-Control": "no-cache"})


class WorkerOut(BaseModel):
    """A worker as the dashboard shows it."""

    hostname: str
    up: bool
    active: int
    load_score: float | None = None
    level: str | None = None


class GlobalSlots(BaseModel):
    """The global cap: how many holds take a slot, of how many (0 = unlimited)."""

    held: int
    capacity: int


class LockOut(BaseModel):
    """One resource held, once, with every hold on it (several only for shared or capped
    resources)."""

    resource: str
    kind: str
    mode: str
    capacity: int
    holders: list[dict[str, Any]]
    expires: float
    lease_expired: bool


class DashboardOut(BaseModel):
    """Everything the dashboard shows, read in one request."""

    scope: str
    generated_at: float
    levels: list[str]
    depth: dict[str, int]
    parked_counts: dict[str, int]
    running: list[dict[str, Any]]
    parked: list[dict[str, Any]]
    locks: list[LockOut]
    global_slots: GlobalSlots
    workers: list[WorkerOut]
    failures: list[models.JobOut]
    dead_letters: list[deadletters.DeadLetter]
    notes: list[str]


#: What a job row shows besides its id, from the job store.
JOB_FIELDS = ("task", "user", "project", "models", "priority", "queued_at")


def store_rows(services: Services, job_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Task, user, project, models and priority of the jobs the store has, in one query."""
    if not job_ids or not store_enabled(services.app):
        return {}
    with store_session(services.app) as session:
        rows = session.scalars(select(Job).where(Job.id.in_(sorted(job_ids))))
        return {row.id: {name: value for name, value in queries.job_dict(row).items()
                         if name in JOB_FIELDS} for row in rows}


def from_resources(resources: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """User, project and models read from resource ids (for a job the store lacks yet)."""
    found: dict[str, Any] = {"models": []}
    for resource in resources:
        kind, name = split_resource(resource)
        if kind in ("user", "project"):
            found[kind] = name
        elif kind == "model":
            found["models"].append(name)
    return found


def job_row(row: dict[str, Any], resources: tuple[str, ...] | list[str],
            known: dict[str, Any] | None) -> dict[str, Any]:
    """A live row with the job's task, user, project, models and priority.

    The store's values win over what the resources say; the live row's own
    priority (a parked job's) wins over the store's.
    """
    found: dict[str, Any] = {"task": None, "user": None, "project": None, "models": [],
                             "queued_at": None, "priority_value": None}
    found.update(from_resources(resources))
    for name, value in (known or {}).items():
        if value not in (None, []):
            found["priority_value" if name == "priority" else name] = value
    if row.get("priority_value") is not None:
        found["priority_value"] = row["priority_value"]
    found["priority"] = row.get("priority") or models.priority_name(found["priority_value"])
    return {**row, **found}


def grouped_locks(held: list[inspection.LockHeld]) -> list[LockOut]:
    """Each resource once with its holders; the global slot is left to :class:`GlobalSlots`."""
    found: dict[str, LockOut] = {}
    for lock in held:
        if lock.kind == "global":
            continue
        entry = found.setdefault(lock.resource, LockOut(
            resource=lock.resource, kind=lock.kind, mode=lock.mode, capacity=lock.capacity,
            holders=[], expires=lock.expires, lease_expired=False))
        entry.holders.append({"holder": lock.holder, "job_id": lock.job_id,
                              "state": lock.state, "expires": lock.expires,
                              "lease_expired": lock.lease_expired})
        entry.expires = min(entry.expires, lock.expires)
        entry.lease_expired = entry.lease_expired or lock.lease_expired
    return [found[name] for name in sorted(found)]


def workers(request: Request, services: Services) -> list[WorkerOut]:
    """Workers with their load (their load records), and those only Celery's broadcast saw."""
    from pipeline.admission.agents import list_agents

    found = {a.name: WorkerOut(hostname=a.name, up=True, active=a.running, load_score=a.score,
                               level=a.level.value) for a in list_agents(services)}
    view = getattr(request.app.state.metrics, "workers", None)
    if view is None:
        return [found[name] for name in sorted(found)]
    for host in sorted(view.seen):
        if host not in found:
            found[host] = WorkerOut(hostname=host, up=host in view.active,
                                    active=view.active.get(host, 0))
    return [found[name] for name in sorted(found)]


def _failures(services: Services, notes: list[str]) -> list[models.JobOut]:
    if not store_enabled(services.app):
        notes.append("job store disabled")
        return []
    with store_session(services.app) as session:
        rows = queries.list_jobs(session, states=["FAILED", "DEAD_LETTERED"], limit=10)
        return [models.JobOut.of(queries.job_dict(row)) for row in rows]


@router.get("/api/dashboard", response_model=DashboardOut, tags=["system"])
def dashboard_data(request: Request, services: Svc, caller: Reader) -> DashboardOut:
    """The dashboard's data: depth, running and parked jobs, locks, workers, failures."""
    notes: list[str] = []
    status = inspection.status(services, with_workers=False)
    running = inspection.running_jobs(services, limit=ROWS * 4)
    parked = inspection.parked_jobs(services, limit=ROWS)
    held = inspection.locks(services, limit=ROWS * 4)
    known = store_rows(services, {r.job_id for r in running} | {p.job_id for p in parked})
    return DashboardOut(
        scope=caller.scope.name.lower(), generated_at=time.time(),
        levels=list(inspection.LEVELS), depth=status.depth,
        parked_counts=status.parked_by_priority,
        running=[job_row(r.as_dict(), r.resources, known.get(r.job_id)) for r in running],
        parked=[job_row(p.as_dict(), p.needs, known.get(p.job_id)) for p in parked],
        locks=grouped_locks(held),
        global_slots=GlobalSlots(held=sum(1 for lock in held if lock.kind == "global"),
                                 capacity=services.settings.capacity_global),
        workers=workers(request, services), failures=_failures(services, notes),
        dead_letters=deadletters.list_dead(services, limit=ROWS),
        notes=notes,
    )
