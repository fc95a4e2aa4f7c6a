"""The job an imported operator request runs as (``pipeline import``).

``pipeline import FILE`` gives each approved request of a pending-requests
file to :func:`handle`, as its one argument (the request object as the file
had it), with the request id as the job id, the request's user and project as
the job's resources and the priority worked out from its urgency.

:func:`handle` dispatches on the request's ``type`` to a handler of
:data:`HANDLERS`. The handlers here only acknowledge the request and say what
would be done: a deployment replaces them with its own (restart the service,
create the subdomain...), or points ``pipeline import --task`` at its own task.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from pipeline import PipelineTask
from tasks.app import app

logger = logging.getLogger(__name__)

#: What each request type would do, for the acknowledging handler.
ACTIONS = {
    "support_request": "answer the support request",
    "subdomain_create": "create the subdomain",
    "config_change": "apply the configuration change",
    "service_restart": "restart the service",
    "service_deploy": "deploy the service",
}


def acknowledge(request: dict[str, Any]) -> dict[str, Any]:
    """Log the request and return what was done with it (nothing but noting it)."""
    kind = str(request.get("type"))
    action = ACTIONS.get(kind, f"handle the {kind} request")
    logger.info("request %s (%s): %s", request.get("id"), kind, action)
    return {"request": str(request.get("id")), "type": kind, "action": action,
            "handled_at": time.time(), "host": socket.gethostname(), "pid": os.getpid()}


#: Handler per request type; a type not listed is acknowledged.
HANDLERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    kind: acknowledge for kind in ACTIONS
}


@app.task(base=PipelineTask, name="tasks.requests.handle", track_started=True)
def handle(request: dict[str, Any]) -> dict[str, Any]:
    """Carry out one imported request: the handler of its ``type``."""
    return HANDLERS.get(str(request.get("type")), acknowledge)(request)
