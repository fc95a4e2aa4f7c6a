"""A cancelled job, where Celery users look: REVOKED in the result backend, and Flower.

A job cancelled before it ran never reaches Celery's own revoke handling (it
is taken out of the broker's lists or its resource line, or dropped when it
reaches a worker), so without this its ``AsyncResult`` would stay PENDING and
``get()`` would wait forever. Marked REVOKED, ``get()`` raises
``TaskRevokedError``, as for a job revoked by ``app.control.revoke``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from typing import Any

from pipeline.runtime.services import Services

logger = logging.getLogger(__name__)


def mark_revoked(services: Services, job_ids: Iterable[str], reason: str, *,
                 hostname: str | None = None) -> None:
    """Record *job_ids* REVOKED with *reason* and tell Flower (``task-revoked``).

    Never raises: the job is cancelled already; a report that fails is logged.
    """
    for job_id in job_ids:
        try:
            services.app.backend.mark_as_revoked(job_id, reason)
            services.send_task_event("task-revoked", hostname, uuid=job_id, terminated=False,
                                   signum=None, expired=False)
        except Exception:
            logger.exception("could not record job %s as REVOKED", job_id)


def report_expired(services: Services, limit: int = 500) -> int:
    """Mark REVOKED the parked jobs that expired since the last call (and the workflow
    steps their messages carry); returns how many jobs. Called by every sweep."""
    expired = services.lock_actions.take_expired(limit)
    reason = (f"expired: parked longer than pipeline_wait_timeout "
              f"({services.settings.wait_timeout:g} s)")
    for job_id, message in expired:
        mark_revoked(services, ids_in_message(message) or [job_id], reason)
    return len(expired)


def chain_ids(chain_field: Any) -> list[str]:
    """Ids of the steps still to run that a request's ``chain`` holds (frozen ones)."""
    ids = []
    for step in chain_field or ():
        options = step.get("options") if isinstance(step, dict) else None
        task_id = (options or {}).get("task_id")
        if isinstance(task_id, str):
            ids.append(task_id)
    return ids


def ids_in_message(message: str) -> list[str]:
    """The job id of a stored broker message, then the ids of the chain steps it carries.

    Those steps would have been published by the job: cancelled with it, they
    never run. Unreadable parts are skipped.
    """
    try:
        stored = json.loads(message)
        ids = [str(stored["headers"]["id"])]
        body = stored.get("body")
        if (stored.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        embed = json.loads(body)[2]
    except (ValueError, KeyError, IndexError, TypeError):
        return []
    return ids + chain_ids(embed.get("chain") if isinstance(embed, dict) else None)
