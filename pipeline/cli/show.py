"""``pipeline show JOB``: where a job is and why, and what the job store recorded of it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from pipeline.cli.context import get_context, load_app, reports_errors
from pipeline.errors import StoreError


def _when(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return str(value)


def _store_lines(app: Any, job_id: str, history: int) -> list[str]:
    """The job's row and its last *history* audit rows, or why they cannot be read."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipeline import conf
    from pipeline.store import queries
    from pipeline.store.session import session_scope

    settings = conf.read(app.conf)
    if not settings.store_enabled:
        return ["job store: disabled (pipeline_store_enabled = False)"]
    try:
        with session_scope(settings.store_url) as session:
            found = queries.get_job(session, job_id)
            if found is None:
                return ["job store: no record of this job (not recorded yet, or unknown)"]
            job = found.job
            lines = [
                f"job store: {job.state}  task {job.task}  priority {job.priority}  "
                f"user {job.user or '-'}  project {job.project or '-'}  attempts {job.attempts}",
                f"  queued {_when(job.queued_at)}  started {_when(job.started_at)}  "
                f"finished {_when(job.finished_at)}",
            ]
            if job.blocked_by_job_id or job.conflict_reason:
                lines.append(f"  blocked by {job.blocked_by_job_id}: {job.conflict_reason}")
            if job.error:
                lines.append(f"  error: {job.error}")
            lines.append("history:")
            lines += [f"  {_when(row.created_at)}  {row.event:<14} {row.detail or ''}"
                      for row in found.events[-history:]]
            return lines
    except (StoreError, SQLAlchemyError) as exc:
        return [f"job store: not readable ({exc})"]


@click.command()
@click.argument("job_id")
@click.option("--history", default=20, show_default=True, help="Audit rows to show.")
@reports_errors
def show(job_id: str, history: int) -> None:
    """Show a job: running, parked (behind what, at which position) or queued, and its history."""
    from pipeline import control, explain

    app = load_app(get_context().app_name)
    where = control.position(app, job_id)
    explanation = explain(job_id, app)
    if where.where == "queued":
        click.echo(f"{job_id} is queued in the broker at priority {where.priority}, "
                   f"position {where.place} (jobs ahead of it: {where.place - 1})")
    else:
        click.echo(explanation.describe())
    click.echo(f"result backend state: {app.AsyncResult(job_id).state}")
    for line in _store_lines(app, job_id, history):
        click.echo(line)
