"""Job ids by prefix: what the dashboard's search box asks before it opens a job.

``GET /api/job-ids?prefix=3f2a`` lists the ids that start with the prefix:
jobs holding locks or parked (read from Redis, so a job shows before the
recorder has written it) and every job of the store. One match opens the job;
several are listed for the operator to choose from.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from pipeline.api.deps import Reader, Svc, store_enabled, store_session
from pipeline.observe import inspection
from pipeline.runtime.services import Services
from pipeline.store.models import ID_LENGTH, Job

router = APIRouter(prefix="/api", tags=["jobs"])

MAX_MATCHES = 50


class IdMatches(BaseModel):
    """The ids starting with a prefix (at most ``limit``), and whether there are more."""

    prefix: str
    ids: list[str]
    more: bool


def _like(prefix: str) -> str:
    """A LIKE pattern matching *prefix* literally at the start (``\\`` escapes)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _live(services: Services, prefix: str) -> set[str]:
    found: set[str] = set()
    for hold in inspection.running_jobs(services):
        found |= {hold.job_id, hold.holder}
    found |= {p.job_id for p in inspection.parked_jobs(services, limit=1000)}
    return {job_id for job_id in found if job_id.startswith(prefix)}


@router.get("/job-ids", response_model=IdMatches)
def job_ids(services: Svc, _: Reader,
            prefix: Annotated[str, Query(min_length=1, max_length=ID_LENGTH,
                                         description="The start of a job id")],
            limit: Annotated[int, Query(ge=1, le=MAX_MATCHES)] = 20) -> IdMatches:
    """The job ids that start with *prefix*, sorted: live jobs and the store's."""
    found = _live(services, prefix)
    if store_enabled(services.app):
        with store_session(services.app) as session:
            found |= set(session.scalars(
                select(Job.id).where(Job.id.like(_like(prefix), escape="\\"))
                .order_by(Job.id).limit(limit + 1)))
    ordered = sorted(found)
    return IdMatches(prefix=prefix, ids=ordered[:limit], more=len(ordered) > limit)
