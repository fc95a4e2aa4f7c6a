"""The web dashboard: one HTML page, one script, one stylesheet, and the data they poll.

No build step and nothing fetched from elsewhere at run time: the files ship in
the package (``pipeline/api/static``). The page itself holds no data and is
served without a token; everything it shows comes from ``/api/dashboard``
(read scope), which it polls every 2 s. Cancel and requeue buttons show for an
admin token only.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from pipeline.actions import deadletters
from pipeline.api import models
from pipeline.api.deps import Reader, Svc, store_enabled, store_session
from pipeline.observe import inspection
from pipeline.runtime.services import Services
from pipeline.store import queries

router = APIRouter(tags=["dashboard"])

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


class DashboardOut(BaseModel):
    """Everything the dashboard shows, read in one request."""

    scope: str
    generated_at: float
    levels: list[str]
    depth: dict[str, int]
    parked_counts: dict[str, int]
    running: list[dict[str, Any]]
    parked: list[dict[str, Any]]
    locks: list[dict[str, Any]]
    workers: list[WorkerOut]
    failures: list[models.JobOut]
    dead_letters: list[deadletters.DeadLetter]
    notes: list[str]


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
    return DashboardOut(
        scope=caller.scope.name.lower(), generated_at=time.time(),
        levels=list(inspection.LEVELS), depth=status.depth,
        parked_counts=status.parked_by_priority,
        running=[r.as_dict() for r in inspection.running_jobs(services, limit=ROWS * 4)],
        parked=[p.as_dict() for p in inspection.parked_jobs(services, limit=ROWS)],
        locks=[lock.as_dict() for lock in inspection.locks(services, limit=ROWS * 4)],
        workers=workers(request, services), failures=_failures(services, notes),
        dead_letters=deadletters.list_dead(services, limit=ROWS),
        notes=notes,
    )
