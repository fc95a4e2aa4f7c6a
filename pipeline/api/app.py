"""The FastAPI application: routes, error mapping, ``/metrics``, the dashboard.

:func:`create_app` builds it for one Celery app; :mod:`pipeline.api.server`
serves it with uvicorn (``pipeline api``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
from celery import Celery
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from pipeline import conf
from pipeline.api import admin, agents, apidocs, dashboard, jobs, system
from pipeline.api.auth import TokenSet
from pipeline.api.deps import Reader
from pipeline.errors import (
    ActionRefused,
    AmbiguousJobError,
    LeaseRefused,
    PipelineError,
    ServiceError,
    StoreError,
    UnknownJobError,
)

log = logging.getLogger(__name__)

DESCRIPTION = """\
Jobs of the pipeline: enqueue, list, inspect, cancel and reprioritize them; see the
queues, parked jobs, locks, dead letters and workers; act on them as an operator.

Every request needs `Authorization: Bearer TOKEN`: a token of scope `read` for
`GET`, of scope `admin` for everything that changes something. A server without
tokens configured listens on loopback only and lets every local caller in.

Agents take the jobs of their pool over HTTP (`/api/agents/...`) with a token
`agent:POOL:TOKEN`, which acts for that pool only and reads nothing else: claim
(the locks are taken with the claim, under a lease), start, heartbeat (renews the
lease and the locks), complete or fail, or give the job back. A job is sent to a
pool with `agent_pool` (`POST /api/jobs`, `apply_async(agent_pool=...)`).
"""


def create_app(celery: Celery, *, tokens: TokenSet | None = None,
               metrics: Any = None) -> FastAPI:
    """The REST API and dashboard for *celery*.

    Args:
        celery: the Celery app whose jobs the API serves.
        tokens: the accepted tokens; read from the app's settings when None.
        metrics: a :class:`pipeline.observe.metrics.Metrics` to serve on ``/metrics``
            (its threads run while the app runs); a new one when None.
    """
    settings = conf.read(celery.conf)
    # Outside a worker the app's task modules (its ``include``) are imported only when
    # asked for: the API must know every task it may be asked to enqueue.
    celery.loader.import_default_modules()
    if metrics is None:
        from pipeline.observe.metrics import Metrics

        metrics = Metrics(celery)

    @asynccontextmanager
    async def lifespan(served: FastAPI) -> AsyncIterator[None]:
        metrics.start()
        try:
            yield
        finally:
            metrics.stop()
            waker = getattr(served.state, "wake_redis", None)
            if waker is not None:  # the agents' long polls (pipeline.api.agents)
                await waker.aclose()

    # /docs and /redoc come from pipeline.api.apidocs: their assets ship in the package.
    api = FastAPI(title="pipeline", version="1", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    api.state.celery = celery
    api.state.tokens = tokens if tokens is not None else TokenSet.from_settings(settings)
    api.state.metrics = metrics
    for module in (jobs, agents, system, admin, dashboard, apidocs):
        api.include_router(module.router)
    _add_error_handlers(api)

    @api.get("/metrics", tags=["metrics"], response_class=Response)
    def prometheus(_: Reader) -> Response:
        """Prometheus metrics (text format)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @api.get("/healthz", tags=["metrics"])
    def healthz() -> dict[str, str]:
        """Liveness: answers without a token and reads nothing."""
        return {"status": "ok"}

    return api


def _add_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(LeaseRefused)
    async def lease_refused(_: Request, exc: LeaseRefused) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "why": exc.why}, status_code=409)

    @api.exception_handler(PipelineError)
    async def pipeline_error(_: Request, exc: PipelineError) -> JSONResponse:
        status = 422
        if isinstance(exc, (ServiceError, StoreError)):
            status = 503
        elif isinstance(exc, UnknownJobError):
            status = 404
        elif isinstance(exc, (AmbiguousJobError, ActionRefused)):
            status = 409
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @api.exception_handler(redis.RedisError)
    async def redis_down(_: Request, exc: redis.RedisError) -> JSONResponse:
        log.warning("Redis error while serving a request: %s", exc)
        return JSONResponse({"detail": f"Redis is not available: {exc}"}, status_code=503)

    from sqlalchemy.exc import SQLAlchemyError

    @api.exception_handler(SQLAlchemyError)
    async def store_down(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.warning("job store error while serving a request: %s", exc)
        return JSONResponse({"detail": "the job store is not available"}, status_code=503)
