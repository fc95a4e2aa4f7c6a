"""``pipeline cancel JOB...`` and ``pipeline reprioritize JOB LEVEL``.

Both print the :class:`~pipeline.observe.outcomes.ActionOutcome` the API returns
for the same action; a job id may be a unique prefix of one.
"""

from __future__ import annotations

from typing import Any

import click

from pipeline.actions import control
from pipeline.cli.context import operator_services, reports_errors
from pipeline.cli.output import by_option, json_option, print_json
from pipeline.errors import PipelineError
from pipeline.observe.jobids import resolve_job_id
from pipeline.observe.outcomes import cancel_job, reprioritize_job
from pipeline.priority import level_of, parse_priority


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

    JOB is an id or a unique prefix of one. Exits 1 if any of them could not be
    cancelled (unknown, or finished).
    """
    services = operator_services()
    why = f"cancelled by {by}" + (f": {reason}" if reason else "")
    outcomes = [cancel_job(services, resolve_job_id(services, job_id), terminate=terminate,
                           reason=why) for job_id in job_ids]
    if as_json:
        print_json([outcome.as_dict() for outcome in outcomes])
    else:
        for outcome in outcomes:
            click.echo(f"{outcome.id}: {outcome.message}")
    failed = [o for o in outcomes if not o.done]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(outcomes)} not cancelled: "
                                   + "; ".join(o.message for o in failed))


@click.command()
@click.argument("job_id", metavar="JOB")
@click.argument("priority", metavar="LEVEL")
@json_option
@reports_errors
def reprioritize(job_id: str, priority: str, as_json: bool) -> None:
    """Move a queued or parked job to LEVEL (critical, high, normal, low or 0-9).

    JOB is an id or a unique prefix of one. A parked job keeps its submission
    time among the jobs of its new level; a job queued in the broker goes to
    the back of its new level.
    """
    services = operator_services()
    value: Any = int(priority) if priority.isdigit() else priority
    outcome = reprioritize_job(services, resolve_job_id(services, job_id), value)
    if not outcome.done:
        raise PipelineError(f"{outcome.id} {outcome.message}")
    place = control.position(services, outcome.id)
    if as_json:
        print_json({**outcome.as_dict(), "priority": level_of(parse_priority(value)).label,
                    "position": place.place,
                    "waiting_for": place.resource})
        return
    behind = f" of {place.resource}" if place.resource else ""
    click.echo(f"{outcome.id}: {outcome.message}, position {place.place} in line{behind}")
