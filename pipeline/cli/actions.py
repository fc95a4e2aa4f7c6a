"""``pipeline cancel JOB...`` and ``pipeline reprioritize JOB LEVEL``."""

from __future__ import annotations

from typing import Any

import click

from pipeline.actions import control
from pipeline.cli.context import operator_services, reports_errors
from pipeline.cli.output import by_option, json_option, print_json
from pipeline.errors import PipelineError, UnknownJobError
from pipeline.observe import inspection
from pipeline.priority import level_of, parse_priority
from pipeline.runtime.services import Services

#: What ``cancel`` did, by where the job was found.
CANCELLED = {
    "parked": "cancelled (it was parked)",
    "queued": "cancelled (it was queued in the broker)",
    "between": "cancelled (a workflow between steps: its locks are freed)",
    "granted": "cancelled (it had been handed its locks: they are freed)",
}


def _not_found(services: Services, job_id: str) -> str:
    """Why an action found nothing to act on: unknown, or where the job is instead."""
    try:
        found = inspection.job_detail(services, job_id, history=0)
    except UnknownJobError as exc:
        return str(exc)
    return found.why or f"it is {found.where.replace('_', ' ')}"


@click.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="JOB...")
@click.option("--terminate", is_flag=True,
              help="Kill a running job (its locks are freed); without it a running job is "
                   "only revoked and runs to its end.")
@click.option("--reason", default="", help="Why, for the audit log.")
@by_option
@json_option
@reports_errors
def cancel(job_ids: tuple[str, ...], terminate: bool, reason: str, by: str,
           as_json: bool) -> None:
    """Cancel jobs or workflows wherever they are: queued, parked or running.

    Exits 1 if any of them could not be cancelled (unknown, or finished).
    """
    services = operator_services()
    why = f"cancelled by {by}" + (f": {reason}" if reason else "")
    outcomes = []
    for job_id in job_ids:
        where = control.cancel(services, job_id, terminate=terminate, reason=why)
        if where == "running":
            done = ("terminated (its locks are freed)" if terminate else
                    "revoked: it runs to its end (--terminate stops it)")
        elif where == "unknown":
            done = ""
        else:
            done = CANCELLED.get(where, f"cancelled ({where})")
        outcomes.append({"job_id": job_id, "found": where, "cancelled": bool(done),
                         "message": done or _not_found(services, job_id)})
    if as_json:
        print_json(outcomes)
    else:
        for outcome in outcomes:
            click.echo(f"{outcome['job_id']}: {outcome['message']}")
    failed = [o for o in outcomes if not o["cancelled"]]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(outcomes)} not cancelled: "
                                   + "; ".join(str(o["message"]) for o in failed))


@click.command()
@click.argument("job_id")
@click.argument("priority", metavar="LEVEL")
@json_option
@reports_errors
def reprioritize(job_id: str, priority: str, as_json: bool) -> None:
    """Move a queued or parked job to LEVEL (critical, high, normal, low or 0-9).

    A parked job keeps its submission time among the jobs of its new level; a
    job queued in the broker goes to the back of its new level.
    """
    services = operator_services()
    value: Any = int(priority) if priority.isdigit() else priority
    new = level_of(parse_priority(value)).label
    where = control.reprioritize(services, job_id, value)
    if where == "unknown":
        raise PipelineError(f"{job_id} not reprioritized: {_not_found(services, job_id)}")
    place = control.position(services, job_id)
    if as_json:
        print_json({"job_id": job_id, "found": where, "priority": new,
                    "position": place.place, "waiting_for": place.resource})
        return
    behind = f" of {place.resource}" if place.resource else ""
    click.echo(f"{job_id}: now {new} ({where}), position {place.place} in line{behind}")
