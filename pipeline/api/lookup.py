"""Job ids by prefix: what the dashboard's search box asks before it opens a job.

``GET /api/job-ids?prefix=3f2a`` lists the ids that start with the prefix, from
the same places every command's id resolution reads
(:func:`pipeline.observe.jobids.matching_ids`): live holds, parked jobs and dead
letters (read from Redis, so a job shows before the recorder has written it)
and the job store. One match opens the job; several are listed for the
operator to choose from.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from pipeline.api.deps import Reader, Svc
from pipeline.observe.jobids import matching_ids
from pipeline.store.models import ID_LENGTH

router = APIRouter(prefix="/api", tags=["jobs"])

MAX_MATCHES = 50


class IdMatches(BaseModel):
    """The ids starting with a prefix (at most ``limit``), and whether there are more."""

    prefix: str
    ids: list[str]
    more: bool


@router.get("/job-ids", response_model=IdMatches)
def job_ids(services: Svc, _: Reader,
            prefix: Annotated[str, Query(min_length=1, max_length=ID_LENGTH,
                                         description="The start of a job id")],
            limit: Annotated[int, Query(ge=1, le=MAX_MATCHES)] = 20) -> IdMatches:
    """The job ids that start with *prefix*, sorted: live jobs and the store's."""
    ids, more = matching_ids(services, prefix, limit)
    return IdMatches(prefix=prefix, ids=ids, more=more)
