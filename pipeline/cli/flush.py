"""``pipeline flush``: take every waiting job of a level or state out, after a dry run."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from pipeline.actions import control
from pipeline.cli.context import operator_services, reports_errors
from pipeline.cli.output import (
    by_option,
    confirm,
    console,
    json_option,
    print_json,
    priority_text,
    yes_option,
)
from pipeline.cli.views import table

SHOWN = 20


def _table(report: control.FlushReport) -> Table:
    view = table(("job / task", {"no_wrap": True, "overflow": "ellipsis", "max_width": 36}),
                 "state", "priority", ("user", {"overflow": "ellipsis", "max_width": 12}))
    for job in report.jobs[:SHOWN]:
        view.add_row(f"{escape(job.job_id or '-')}\n[dim]{escape(job.task)}[/]", job.state,
                     priority_text(job.priority), escape(job.user or "-"))
    return view


def _what(priority: str | None, state: str | None) -> str:
    states = {"queued": "queued", "parked": "parked", None: "queued and parked"}[state]
    return f"{states} jobs at {priority or 'every'} level"


@click.command()
@click.option("-p", "--priority", default=None, help="Only this level (or 0-9).")
@click.option("--state", type=click.Choice(control.FLUSH_STATES), default=None,
              help="Only messages queued in the broker, or only parked jobs (default both).")
@click.option("--dry-run", is_flag=True, help="Only list what would go.")
@yes_option
@by_option
@json_option
@reports_errors
def flush(priority: str | None, state: str | None, dry_run: bool, yes: bool, by: str,
          as_json: bool) -> None:
    """Remove waiting jobs: lists what goes, asks, then removes it.

    Each job removed is recorded CANCELLED ("flushed by BY") in the audit log,
    and the flush as one operator event. Running jobs are not touched.
    """
    services = operator_services()
    level: Any = int(priority) if priority and priority.isdigit() else priority
    report = control.flush(services, priority=level, state=state, dry_run=True, by=by)
    what = _what(report.priority, state)
    if dry_run or not report.count:
        if as_json:
            print_json(report.as_dict())
            return
        out = console()
        if report.count:
            out.print(_table(report))
        more = f" (the first {SHOWN} shown)" if report.count > SHOWN else ""
        out.print(f"{report.count} {what} would be flushed{more}" if dry_run
                  else f"nothing to flush: no {what}")
        return
    if not as_json:
        console().print(_table(report))
    if not yes:
        confirm(f"Flush {report.count} {what}?")
    done = control.flush(services, priority=level, state=state, dry_run=False, by=by)
    if as_json:
        print_json(done.as_dict())
        return
    click.echo(f"flushed {done.count} {what}; each is recorded CANCELLED, "
               f"flushed by {by}")
