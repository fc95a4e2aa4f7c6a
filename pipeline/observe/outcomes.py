"""What an action on one job found and did, the same for the CLI and the API.

``pipeline cancel`` and ``POST /api/jobs/{id}/cancel`` (and the same pair for
reprioritize) call these functions and print or return the same
:class:`ActionOutcome`: a finished job is ``found`` (true), ``where``
``finished``, not ``done``, with the message ``finished: COMPLETED``; an id
nothing knows is not found. The CLI exits 1 and the API answers 409 (found) or
404 (not found) when it was not done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.actions import control
from pipeline.errors import UnknownJobError
from pipeline.messages.record import Record
from pipeline.observe.inspection.job import job_detail
from pipeline.priority import level_of, parse_priority
from pipeline.runtime.services import Services

#: What a cancel did, by where the job was found.
CANCELLED = {
    "parked": "cancelled (it was parked)",
    "queued": "cancelled (it was queued in the broker)",
    "delayed": "cancelled (it waited out its countdown)",
    "between": "cancelled (a workflow between steps: its locks are freed)",
    "granted": "cancelled (it had been handed its locks: they are freed)",
}


@dataclass(frozen=True)
class ActionOutcome(Record):
    """What an action on one job found and did.

    Attributes:
        id: the job (its whole id, a prefix given resolved).
        found: some part of the system knows the job.
        where: where it was: ``queued``, ``parked``, ``running``, ``between``,
            ``granted``, ``delayed``; when the action did not apply, where it is
            instead (``finished``, ``dead_letter``, ``elsewhere``), or ``unknown``.
        done: the action was carried out.
        message: one line saying what was done, or why not.
    """

    id: str
    found: bool
    where: str
    done: bool
    message: str


def _not_done(services: Services, job_id: str) -> ActionOutcome:
    """Where a job is that an action found nothing to act on (or that it is unknown)."""
    try:
        found = job_detail(services, job_id, history=0)
    except UnknownJobError as exc:
        return ActionOutcome(job_id, False, "unknown", False, str(exc))
    return ActionOutcome(job_id, True, found.where, False,
                         found.why or f"it is {found.where.replace('_', ' ')}")


def cancel_job(services: Services, job_id: str, *, terminate: bool = False,
               reason: str = "cancelled by request") -> ActionOutcome:
    """Cancel *job_id* wherever it waits or runs (see :func:`control.cancel`)."""
    where = control.cancel(services, job_id, terminate=terminate, reason=reason)
    if where == "unknown":
        return _not_done(services, job_id)
    if where == "running":
        done = ("terminated (its locks are freed)" if terminate else
                "revoked: it runs to its end (terminate stops it)")
    else:
        done = CANCELLED.get(where, f"cancelled ({where})")
    return ActionOutcome(job_id, True, where, True, done)


def reprioritize_job(services: Services, job_id: str, priority: Any) -> ActionOutcome:
    """Move a queued or parked *job_id* to *priority* (see :func:`control.reprioritize`).

    Raises:
        InvalidJobError: *priority* is not a priority.
    """
    new = level_of(parse_priority(priority)).label
    where = control.reprioritize(services, job_id, priority)
    if where == "unknown":
        outcome = _not_done(services, job_id)
        return ActionOutcome(job_id, outcome.found, outcome.where, False,
                             f"not reprioritized (only a queued or parked job can be): "
                             f"{outcome.message}")
    return ActionOutcome(job_id, True, where, True, f"now {new} ({where})")
