"""``pipeline show JOB``: where a job is, why it is not running, and its history."""

from __future__ import annotations

import json
from typing import Any

import click

from pipeline.cli.context import operator_services, reports_errors
from pipeline.cli.output import clock, json_option, print_json, span
from pipeline.observe import inspection
from pipeline.observe.inspection import JobDetail
from pipeline.observe.jobids import resolve_job_id
from pipeline.observe.jobshape import job_out, job_view, json_value, shaped


def _headline(found: JobDetail) -> str:
    if found.where == "running":
        where = f" on {found.host}" if found.host else ""
        where += f" pid {found.pid}" if found.host and found.pid else ""
        under = f" under workflow {found.holder}" if found.holder != found.job_id else ""
        lease = f" (lease until {clock(found.expires)[11:]})" if found.expires else ""
        return (f"{found.job_id} is running{where}{under}, holding "
                f"{', '.join(found.resources)}{lease}")
    if found.where == "stopped":
        return (f"{found.job_id} is not running: its process (pid {found.pid} on "
                f"{found.host}) is gone; it still holds {', '.join(found.resources)}")
    if found.where in ("finished", "dead_letter"):
        return f"{found.job_id}: {found.why}"
    place = f", position {found.place} in line" if found.place else ""
    priority = f", priority {found.priority}" if found.priority else ""
    return f"{found.job_id} is {found.where.replace('_', ' ')}{priority}{place}"


def _record_lines(row: dict[str, Any]) -> list[str]:
    record = job_out(row)
    pool = f"  pool {record.pool} (agent {record.agent or '-'})" if record.pool else ""
    lines = [
        f"job store: {record.state}  task {record.task or '-'}  "
        f"priority {record.priority or '-'}  user {record.user or '-'}  "
        f"project {record.project or '-'}  attempts {record.attempts}{pool}",
        f"  queued {clock(record.queued_at)}  started {clock(record.started_at)}  "
        f"finished {clock(record.finished_at)}"
        + (f"  ran {span(record.runtime)}" if record.runtime is not None else ""),
    ]
    if record.args is not None or record.kwargs:
        lines.append(f"  args {_json(record.args)}  kwargs {_json(record.kwargs or {})}")
    if record.result is not None:
        lines.append(f"  result {_json(record.result)}")
    if record.blocked_by_job_id or record.conflict_reason:
        lines.append(f"  blocked by {record.blocked_by_job_id}: {record.conflict_reason}")
    if record.error:
        lines.append(f"  error: {record.error}")
    return lines


def _json(value: Any) -> str:
    return _cut(json.dumps(value, default=str, ensure_ascii=False), 200)


#: Fields of an event's detail the job store's row already shows.
_SHOWN_ABOVE = {"task", "priority", "user", "project", "models", "args", "workflow",
                "workflow_name", "workflow_steps", "step", "queued_at"}


def _summary(event: str, detail: dict[str, Any]) -> str:
    """What one audit row says, in a few words (``--json`` has every field)."""
    if event in ("blocked", "conflict", "cancelled", "expired") and detail.get("reason"):
        return str(detail["reason"])
    if event == "started":
        where = (f"agent {detail['agent']} of pool {detail.get('pool', '?')}" if detail.get("agent")
                 else f"{detail.get('host', '?')} pid {detail.get('pid', '?')}")
        return f"on {where}, attempt {detail.get('attempt', 1)}, token {detail.get('token', '?')}"
    if event in ("granted", "lock_lost") and detail.get("resources"):
        return f"{', '.join(detail['resources'])} (hold {detail.get('holder', '?')})"
    if event in ("retried", "failed", "dead_lettered") and detail.get("error"):
        return str(detail["error"])
    if event == "completed":
        ran = f" after {span(detail['runtime'])}" if detail.get("runtime") else ""
        return f"returned {_json(json_value(detail.get('result')))}{ran}"
    if event == "operator":
        said = [f"{detail.get('action')} by {detail.get('by')}"]
        said += [str(detail[k]) for k in ("target", "reason") if detail.get(k)]
        return ": ".join(said)
    if event == "queued" and detail.get("given_back"):
        return str(detail.get("reason") or "given back to its pool")
    if event == "queued":
        attempt = detail.get("attempt")
        return ("requeued" if detail.get("requeued") else
                f"attempt {attempt}" if isinstance(attempt, int) and attempt > 1 else "")
    if event == "reprioritized":
        return f"priority {detail.get('previous')} -> {detail.get('priority')}"
    rest = {k: v for k, v in detail.items()
            if k not in _SHOWN_ABOVE and v is not None and v != []}
    return json.dumps(rest, separators=(", ", ": "), default=str) if rest else ""


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


@click.command()
@click.argument("job_id", metavar="JOB")
@click.option("--history", default=20, show_default=True,
              help="How many of the latest audit rows to show.")
@json_option
@reports_errors
def show(job_id: str, history: int, as_json: bool) -> None:
    """Show a job: where it is, why it is not running, its record and history.

    JOB is an id or a unique prefix of one. ``--json`` prints the job's shape
    the API returns (docs: reference/job-schema). Exits 1 when no part of the
    system knows JOB.
    """
    services = operator_services()
    app = services.app
    found = inspection.job_detail(services, resolve_job_id(services, job_id), history=history)
    if as_json:
        print_json(shaped(job_view(found)))
        return
    click.echo(_headline(found))
    if found.why and found.where not in ("finished", "dead_letter"):
        click.echo(f"why it is not running: {found.why}")
    click.echo(f"result backend state: {found.result_state}")
    if found.record is not None:
        for line in _record_lines(found.record):
            click.echo(line)
    elif app.conf.get("pipeline_store_enabled") is False:
        click.echo("job store: disabled (pipeline_store_enabled = False)")
    else:
        click.echo("job store: no row yet (the recorder has not written it)")
    if found.history:
        click.echo("history:")
        for row in found.history:
            at = clock(row["at"], ms=True)[11:]
            said = _cut(_summary(row["event"], row["detail"]), 120)
            click.echo(f"  {at}  {row['event']:<13} {said}".rstrip())
