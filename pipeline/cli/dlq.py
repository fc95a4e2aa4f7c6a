"""``pipeline dlq list|requeue|purge``: jobs whose last attempt failed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.markup import escape

from pipeline.actions import deadletters
from pipeline.cli.context import operator_services, reports_errors
from pipeline.cli.output import (
    by_option,
    clock,
    confirm,
    console,
    json_option,
    print_json,
    priority_text,
    yes_option,
)
from pipeline.cli.views import table
from pipeline.observe.inspection.live import label
from pipeline.observe.jobids import resolve_job_ids
from pipeline.observe.timewindow import parse_since
from pipeline.runtime.services import Services

F = TypeVar("F", bound=Callable[..., Any])


def filters(func: F) -> F:
    """The options every dlq command filters with."""
    for option in reversed((
        click.option("--task", default=None, help="Only this task's."),
        click.option("--user", default=None, help="Only this user's."),
        click.option("--project", default=None, help="Only this project's."),
        click.option("-p", "--priority", default=None, help="Only this level (or 0-9)."),
        click.option("--since", default=None,
                     help="Dead-lettered since: 30m, 2h, 7d, or an ISO date."),
    )):
        func = option(func)
    return func


def chosen(task: str | None, user: str | None, project: str | None, priority: str | None,
           since: str | None) -> dict[str, Any]:
    """The filter keywords of :mod:`pipeline.actions.deadletters`."""
    return {"task": task, "user": user, "project": project,
            "priority": int(priority) if priority and priority.isdigit() else priority,
            "since": parse_since(since).timestamp() if since else None}


@click.group()
def dlq() -> None:
    """Dead letters: jobs whose last attempt failed, kept with their error."""


@dlq.command("list")
@filters
@click.option("-n", "--limit", default=100, show_default=True, help="At most this many.")
@json_option
@reports_errors
def list_dead(task: str | None, user: str | None, project: str | None, priority: str | None,
              since: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, oldest first."""
    services = operator_services()
    found = deadletters.list_dead(services, limit=limit,
                                  **chosen(task, user, project, priority, since))
    if as_json:
        print_json([deadletters.as_dict(entry) for entry in found])
        return
    view = table(("job / task / error", {"no_wrap": True, "overflow": "ellipsis",
                                         "max_width": 36}),
                 "priority", ("user", {"overflow": "ellipsis", "max_width": 10}),
                 ("dead since", {"no_wrap": True}), ("tries", {"justify": "right"}))
    for entry in found:
        view.add_row(f"{escape(entry.job_id)}\n[dim]{escape(entry.task)}[/]\n"
                     f"[red]{escape(entry.error)}[/]",
                     priority_text(label(entry.priority)), escape(entry.user or "-"),
                     clock(entry.dead_at)[5:16], str(entry.attempts))
    out = console()
    if found:
        out.print(view)
    out.print(f"{len(found)} dead letter(s)")


def acting(func: F) -> F:
    """The arguments and options of a command acting on dead letters."""
    for option in reversed((
        click.argument("job_ids", nargs=-1, metavar="[JOB]..."), filters, yes_option,
        by_option, json_option, reports_errors,
    )):
        func = option(func)
    return func


def _prepare(action: str, job_ids: tuple[str, ...], yes: bool, given: dict[str, Any]
             ) -> tuple[Services, dict[str, Any]]:
    """The services and the filter keywords; asks first when acting on every dead letter
    chosen by filter (dead letters named by id are not asked for)."""
    services = operator_services()
    options = chosen(**given)
    if not yes and not job_ids:
        described = ", ".join(f"{k} {v}" for k, v in given.items() if v is not None)
        confirm(f"{action} every dead letter{' with ' + described if described else ''}?")
    return services, options


def _refuse_missing(missing: list[str]) -> None:
    if missing:
        raise click.ClickException(f"not dead letters: {', '.join(missing)}")


@dlq.command()
@acting
def requeue(job_ids: tuple[str, ...], task: str | None, user: str | None, project: str | None,
            priority: str | None, since: str | None, yes: bool, by: str,
            as_json: bool) -> None:
    """Publish dead letters again (same id; attempt numbers go on, retries start afresh).

    Names JOBs (ids or unique prefixes), or every dead letter the filters choose (asks first).
    """
    services, options = _prepare("Requeue", job_ids, yes, {
        "task": task, "user": user, "project": project, "priority": priority, "since": since})
    job_ids = tuple(resolve_job_ids(services, job_ids))
    done = deadletters.requeue(services, list(job_ids) or None, by=by, **options)
    missing = sorted(set(job_ids) - set(done))
    if as_json:
        print_json({"requeued": done, "not_found": missing})
    else:
        click.echo(f"requeued {len(done)} job(s)" + "".join(f"\n  {j}" for j in done))
    _refuse_missing(missing)


@dlq.command()
@acting
def purge(job_ids: tuple[str, ...], task: str | None, user: str | None, project: str | None,
          priority: str | None, since: str | None, yes: bool, by: str, as_json: bool) -> None:
    """Delete dead letters for good (the job store keeps their rows).

    Names JOBs (ids or unique prefixes), or every dead letter the filters choose (asks first).
    """
    services, options = _prepare("Purge", job_ids, yes, {
        "task": task, "user": user, "project": project, "priority": priority, "since": since})
    job_ids = tuple(resolve_job_ids(services, job_ids))
    known = {job_id for job_id in job_ids if deadletters.get(services, job_id) is not None}
    count = deadletters.purge(services, list(job_ids) or None, by=by, **options)
    if as_json:
        print_json({"purged": count, "not_found": sorted(set(job_ids) - known)})
    else:
        click.echo(f"purged {count} dead letter(s)")
    _refuse_missing(sorted(set(job_ids) - known))
