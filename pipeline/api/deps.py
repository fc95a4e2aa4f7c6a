"""What every route needs: the caller's scope, the Celery app, the job store, errors.

Errors the user caused become a 422 shaped like FastAPI's own validation
errors (``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``), so a client
reads one shape whatever rejected its input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

from celery import Celery
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from pipeline import conf
from pipeline.api.auth import Caller, Scope, TokenSet
from pipeline.runtime.services import Services, services_for

bearer = HTTPBearer(auto_error=False, description="A token of scope read or admin, or an "
                                                   "agent's token agent:POOL:TOKEN.")
#: Who calls when no token is configured (the API then listens on loopback only).
LOCAL = Caller(Scope.ADMIN, "api:local")


def celery_app(request: Request) -> Celery:
    """The Celery app the API serves."""
    app: Celery = request.app.state.celery
    return app


def app_services(request: Request) -> Services:
    """The services of the Celery app the API serves, in this process."""
    return services_for(celery_app(request))


def _caller(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    tokens: TokenSet = request.app.state.tokens
    if not tokens:
        return LOCAL
    caller = tokens.check(credentials.credentials) if credentials is not None else None
    if caller is None:
        raise HTTPException(401, "a valid bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    return caller


def read_access(request: Request,
                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                ) -> Caller:
    """A token of the read or admin scope (an agent's token reads nothing)."""
    caller = _caller(request, credentials)
    if caller.scope < Scope.READ:
        raise HTTPException(403, f"an agent's token (pool {caller.pool}) may only claim and "
                                 "report the jobs of its pool")
    return caller


def agent_access(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                 ) -> Caller:
    """An agent's token, or an admin's (which may act for any pool); each route checks
    the pool (:meth:`Caller.may_act_for`)."""
    caller = _caller(request, credentials)
    if caller.scope is Scope.READ:
        raise HTTPException(403, "claiming and reporting jobs needs an agent's token "
                                 "(agent:POOL:TOKEN) or one of the admin scope")
    return caller


def admin_access(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                 ) -> Caller:
    """A token of the admin scope."""
    caller = _caller(request, credentials)
    if caller.scope < Scope.ADMIN:
        raise HTTPException(403, "this action needs a token of the admin scope")
    return caller


Reader = Annotated[Caller, Depends(read_access)]
AgentCaller = Annotated[Caller, Depends(agent_access)]
Admin = Annotated[Caller, Depends(admin_access)]
App = Annotated[Celery, Depends(celery_app)]
Svc = Annotated[Services, Depends(app_services)]

_FIELD = re.compile(r"^(?:item (\d+): )?(\w+)=")


def unprocessable(exc: Exception | str, *where: str | int) -> NoReturn:
    """Raise a 422 for a rejected input; the field is read from a pipeline message.

    Pipeline errors start with ``field=value is not accepted``; a batch item's
    with ``item N:``. *where* is the location of the input (``body``).
    """
    message = str(exc)
    loc: list[str | int] = list(where)
    match = _FIELD.match(message)
    if match:
        if match.group(1) is not None:
            loc += ["jobs", int(match.group(1))]
        loc.append(match.group(2))
    raise HTTPException(422, [{"loc": loc, "msg": message, "type": "value_error"}])


def not_found(what: str) -> NoReturn:
    """Raise a 404 naming what was not found."""
    raise HTTPException(404, f"{what} is not known")


@contextmanager
def store_session(app: Celery) -> Iterator[Session]:
    """A session on the job store (503 when the store is disabled)."""
    from pipeline.store.session import session_scope

    settings = conf.read(app.conf)
    if not settings.store_enabled:
        raise HTTPException(503, "the job store is disabled (pipeline_store_enabled = False)")
    with session_scope(settings.store_url) as session:
        yield session


def store_enabled(app: Celery) -> bool:
    """Whether the app records jobs in the store."""
    return conf.read(app.conf).store_enabled


def as_dict(value: Any) -> dict[str, Any]:
    """A dataclass or an object with ``as_dict()`` as a dict."""
    method = getattr(value, "as_dict", None)
    if callable(method):
        result: dict[str, Any] = method()
        return result
    return dict(vars(value))
