"""``pipeline locks list`` and ``pipeline locks release RESOURCE``."""

from __future__ import annotations

import click

from pipeline.actions import control
from pipeline.cli.context import operator_services, reports_errors
from pipeline.cli.output import by_option, confirm, console, json_option, print_json, yes_option
from pipeline.cli.views import locks_table
from pipeline.observe import inspection


@click.group()
def locks() -> None:
    """List the locks held, or force-release a stuck one."""


@locks.command("list")
@click.option("--kind", type=click.Choice(["user", "project", "model", "global"]), default=None,
              help="Only locks of this kind.")
@json_option
@reports_errors
def list_locks(kind: str | None, as_json: bool) -> None:
    """Every resource held: its mode, the job holding it, the lease left."""
    services = operator_services()
    held = [lock for lock in inspection.locks(services) if kind is None or lock.kind == kind]
    if as_json:
        print_json([lock.as_dict() for lock in held])
        return
    out = console()
    if held:
        out.print(locks_table(held))
    jobs = len({lock.holder for lock in held})
    out.print(f"{len(held)} lock(s) held by {jobs} job(s)")


@locks.command()
@click.argument("resource")
@click.option("--reason", default="released by hand", show_default=True,
              help="Why, for the audit log.")
@yes_option
@by_option
@json_option
@reports_errors
def release(resource: str, reason: str, yes: bool, by: str, as_json: bool) -> None:
    """Force-release RESOURCE (user:alice, model:bert, project:nlp, global).

    Every hold on it ends (with all its other resources: a hold is all or
    nothing) and the next parked jobs get it, as at a normal release. The job
    that held it is not stopped: it finds its lease lost at its next renewal.
    Asks first; recorded as an operator action in the audit log.
    """
    control.check_resource(resource)
    services = operator_services()
    holding = [lock for lock in inspection.locks(services) if lock.resource == resource]
    if not holding:
        raise control.not_held(resource)
    if not as_json:
        console().print(locks_table(holding))
    if not yes:
        confirm(f"Release {resource}, ending {len(holding)} hold(s)?")
    report = control.release_resource(services, resource, reason=reason, by=by)
    if as_json:
        print_json(report.as_dict())
        return
    for hold in report.ended:
        click.echo(f"ended the hold of {hold.job_id or hold.holder} on "
                   f"{', '.join(hold.resources) or resource}")
    click.echo(f"{resource} handed to {', '.join(report.handed_to)}" if report.handed_to
               else f"{resource} is free: no parked job was waiting for it")
