"""``pipeline jobs``: the job store's jobs, filtered, most recently queued first."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from pipeline.cli.context import get_context, live_services, load_app, reports_errors
from pipeline.cli.output import (
    STATE_STYLES,
    clock,
    console,
    json_option,
    print_json,
    priority_text,
    styled,
)
from pipeline.cli.views import table
from pipeline.conf import read
from pipeline.errors import ConfigurationError
from pipeline.observe.jobshape import JobPage, job_out, shaped
from pipeline.observe.timewindow import parse_since
from pipeline.priority import priorities_at
from pipeline.store import queries
from pipeline.store.session import session_scope


def store_url_of(app: Any) -> str:
    """The app's job store URL.

    Raises:
        ConfigurationError: the store is disabled (``pipeline_store_enabled``).
    """
    settings = read(app.conf)
    if not settings.store_enabled:
        raise ConfigurationError("the job store is disabled (pipeline_store_enabled = False): "
                                 "there is nothing to read")
    return settings.store_url


@click.command()
@click.option("-s", "--state", "states", multiple=True,
              help="Only jobs in this state (repeatable): queued, blocked, running, completed, "
                   "failed, dead_lettered, expired, cancelled.")
@click.option("--user", default=None, help="Only this user's jobs.")
@click.option("--project", default=None, help="Only this project's jobs.")
@click.option("--model", default=None, help="Only jobs using this model.")
@click.option("-p", "--priority", default=None, help="Only jobs at this level (or 0-9).")
@click.option("--since", default=None, help="Queued since: 30m, 2h, 7d, or an ISO date.")
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(1, 1000),
              help="At most this many jobs.")
@json_option
@reports_errors
def jobs(states: tuple[str, ...], user: str | None, project: str | None, model: str | None,
         priority: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """List jobs from the job store, most recently queued first.

    ``--json`` prints the page the API's ``GET /api/jobs`` returns (docs:
    reference/job-schema). Without Redis it still answers, with a warning.
    """
    app = load_app(get_context().app_name)
    levels = None
    if priority is not None:
        levels = priorities_at(int(priority) if priority.isdigit() else priority)
    start = parse_since(since) if since else None
    url = store_url_of(app)
    live = live_services(app) is not None
    filters: dict[str, Any] = {"states": states or None, "user": user, "project": project,
                               "model": model, "priority": levels, "since": start}
    with session_scope(url) as session:
        found = [job_out(queries.job_dict(job))
                 for job in queries.list_jobs(session, limit=limit, **filters)]
        total = queries.count_jobs(session, **filters)
    if as_json:
        print_json(shaped(JobPage(total=total, limit=limit, offset=0, jobs=found, live=live)))
        return
    rows = [job.model_dump() for job in found]
    view = table()
    view.add_column("job / task", no_wrap=True, overflow="ellipsis", max_width=36)
    view.add_column("state", no_wrap=True, overflow="ellipsis", max_width=9)
    view.add_column("priority", no_wrap=True)
    view.add_column("user", no_wrap=True, overflow="ellipsis", max_width=8)
    view.add_column("queued", no_wrap=True)
    for row in rows:
        view.add_row(f"{escape(row['id'])}\n[dim]{escape(row['task'] or '-')}[/]",
                      styled(row["state"], STATE_STYLES.get(row["state"], "")),
                      priority_text(row["priority"] or ""), escape(row["user"] or "-"),
                      clock(row["queued_at"])[5:16])
    out = console()
    out.print(view)
    out.print(f"{len(rows)} job(s)" + (f" (the first {limit} of {total}; --limit shows more)"
                                       if total > len(rows) else ""))
