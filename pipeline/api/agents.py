"""Agents over HTTP: claim a pool's job, start, heartbeat, complete, fail, give back.

An agent holds a token ``agent:POOL:TOKEN`` (an admin's token may act for any
pool) and no broker credentials. Each route calls :mod:`pipeline.remote`. A
call about a job of another pool is refused (403), a job nobody knows is a
404, and a lease that is not the job's current one (a late agent whose lease
ran out, a second report) a 409 that changes nothing.

A claim may wait for a job (``wait``, a long poll): it blocks on the pool's
wake list, which every publish, hand-off and give-back to the pool feeds, and
claims again when woken; no loop polls Redis meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis.asyncio
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from pipeline.api import agent_models as models
from pipeline.api.auth import Caller
from pipeline.api.deps import AgentCaller, Svc, not_found, unprocessable
from pipeline.conf import broker_redis_url
from pipeline.errors import InvalidJobError, LeaseRefused, UnknownJobError
from pipeline.job.pools import pool_lists
from pipeline.keys import wake_key
from pipeline.locks.resources import check_id
from pipeline.observe import inspection
from pipeline.remote import claims, outcome, reports
from pipeline.runtime.services import Services

router = APIRouter(prefix="/api/agents", tags=["agents"])
T = TypeVar("T")
_REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"description": "The job (or pool) is not the token's pool."},
    404: {"description": "No part of the system knows the job."},
    409: {"model": models.RefusedOut,
          "description": "The lease shown is not the job's current one: nothing changed."},
}


def _pool_allowed(caller: Caller, pool: str) -> None:
    if not caller.may_act_for(pool):
        raise HTTPException(403, f"this token acts for pool {caller.pool or '?'}, not {pool}")


def _on_job(services: Services, caller: Caller, job_id: str, call: Callable[[], T]) -> T:
    """Run *call* on a claimed job after the pool check; 404 for a job nobody knows."""
    try:
        check_id("job_id", job_id)
    except InvalidJobError as exc:
        unprocessable(exc, "path")
    pool = reports.pool_of_job(services, job_id)
    if pool is not None:
        _pool_allowed(caller, pool)
    try:
        return call()
    except LeaseRefused as exc:
        if exc.why == "none" and pool is None:
            try:
                inspection.job_detail(services, job_id, history=0)
            except UnknownJobError:
                not_found(f"job {job_id}")
        raise


@router.post("/claim", response_model=models.ClaimedOut, status_code=200,
             responses={204: {"description": "No job of the pool can run now."},
                        403: _REFUSED[403]})
async def claim(body: models.ClaimIn, request: Request, services: Svc,
                caller: AgentCaller) -> Any:
    """Claim the most urgent job of the pool whose locks can all be taken (FIFO within a
    priority), its locks taken with the claim; 204 when none can run now.

    A job whose locks are taken is parked on the way, as on a worker, and comes back to
    the pool when a release hands it its locks. The job is leased to the agent for
    `lease_seconds`: heartbeat to keep it, or it is given back to the pool.
    """
    _pool_allowed(caller, body.pool)
    deadline = time.monotonic() + body.wait
    while True:
        found = await run_in_threadpool(claims.claim, services, body.pool, body.agent_id)
        if found.job is not None:
            return models.ClaimedOut.of(found.job)
        wait = claims.wait_seconds(found, deadline - time.monotonic())
        if deadline - time.monotonic() <= 0:
            return Response(status_code=204)
        if wait > 0:
            await _wait_for_wake(request, services, body.pool, wait)


async def _wait_for_wake(request: Request, services: Services, pool: str,
                         seconds: float) -> None:
    """Block (without a thread) until the pool's wake list gets a token, or *seconds* pass."""
    state = request.app.state
    client = getattr(state, "wake_redis", None)
    if client is None:
        client = state.wake_redis = redis.asyncio.Redis.from_url(broker_redis_url(services.app))
    await client.brpop([wake_key(pool_lists(services.app, pool)[0])],
                       timeout=max(round(seconds, 3), 0.01))


@router.post("/jobs/{job_id}/start", response_model=models.LeaseOut, responses=_REFUSED)
def start(job_id: str, body: models.LeaseIn, services: Svc,
          caller: AgentCaller) -> models.LeaseOut:
    """The agent started running the job: STARTED in the result backend and Flower."""
    deadline = _on_job(services, caller, job_id,
                       lambda: reports.start(services, job_id, body.lease))
    return models.LeaseOut(id=job_id, lease_expires_at=models.at(deadline),
                           lease_seconds=services.settings.lease)


@router.post("/jobs/{job_id}/heartbeat", response_model=models.LeaseOut, responses=_REFUSED)
def heartbeat(job_id: str, body: models.LeaseIn, services: Svc,
              caller: AgentCaller) -> models.LeaseOut:
    """Renew the job's lease and its locks by one lease (send one every third of it)."""
    deadline = _on_job(services, caller, job_id,
                       lambda: reports.heartbeat(services, job_id, body.lease))
    return models.LeaseOut(id=job_id, lease_expires_at=models.at(deadline),
                           lease_seconds=services.settings.lease)


@router.post("/jobs/{job_id}/complete", response_model=models.OutcomeOut, responses=_REFUSED)
def complete(job_id: str, body: models.CompleteIn, services: Svc,
             caller: AgentCaller) -> models.OutcomeOut:
    """The job succeeded: its result is stored (``AsyncResult.get()`` returns it), its
    workflow goes on, its locks are released (or kept for its workflow's next step)."""
    ended = _on_job(services, caller, job_id, lambda: reports.end(services, job_id, body.lease))
    outcome.complete(services, ended, body.result)
    return models.OutcomeOut(id=job_id, state="COMPLETED")


@router.post("/jobs/{job_id}/fail", response_model=models.OutcomeOut, responses=_REFUSED)
def fail(job_id: str, body: models.FailIn, services: Svc,
         caller: AgentCaller) -> models.OutcomeOut:
    """The job failed: with `retry`, it runs again after the task's backoff while attempts
    remain (dead-lettered after the last); else it fails at once (its chain fails, its
    errbacks are called). ``AsyncResult.get()`` raises ``AgentJobFailed``."""
    ended = _on_job(services, caller, job_id, lambda: reports.end(services, job_id, body.lease))
    done = outcome.fail(services, ended, body.error, retry=body.retry,
                        traceback=body.traceback)
    state = {outcome.RETRIED_OUTCOME: "RETRY", outcome.DEAD_LETTERED_OUTCOME: "DEAD_LETTERED"}
    return models.OutcomeOut(id=job_id, state=state.get(done, "FAILED"))


@router.post("/jobs/{job_id}/release", response_model=models.OutcomeOut, responses=_REFUSED)
def release(job_id: str, body: models.ReleaseIn, services: Svc,
            caller: AgentCaller) -> models.OutcomeOut:
    """The agent gives the job back (it is stopping): back to the front of its pool at
    once, its locks freed and handed on, no attempt spent; the reason goes in its history."""
    _on_job(services, caller, job_id,
            lambda: reports.give_back(services, job_id, body.lease, body.reason))
    return models.OutcomeOut(id=job_id, state="QUEUED")

