"""``pipeline import FILE``: a pending-requests file as jobs.

See :mod:`pipeline.actions.importer`.
"""

from __future__ import annotations

from collections import Counter

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from pipeline.actions.importer import ENQUEUE, LISTED, ImportReport, import_file
from pipeline.cli.context import operator_services, reports_errors
from pipeline.cli.output import console, json_option, print_json, priority_text
from pipeline.cli.views import table

DEFAULT_TASK = "tasks.requests.handle"
#: A file with more requests to enqueue than this shows a progress bar.
PROGRESS_FROM = 200
ACTION_STYLES = {"enqueued": "green", ENQUEUE: "green", LISTED: "yellow", "completed": "dim",
                 "duplicate": "dim", "already imported": "dim"}


def _rows_table(report: ImportReport, actions: tuple[str, ...], title: str) -> Table:
    view = table(title=title)
    for name in ("request", "type", "user", "priority", "why"):
        view.add_column(name, overflow="fold")
    for row in report.rows:
        if row.action in actions:
            view.add_row(escape(row.request_id), escape(row.type), escape(row.user or "-"),
                          priority_text(row.priority), escape(row.priority_reason))
    return view


def _summary(report: ImportReport) -> Table:
    view = table(title="summary")
    view.add_column("requests")
    for level in ("critical", "high", "normal", "low"):
        view.add_column(level, justify="right")
    view.add_column("total", justify="right", style="bold")
    per_action: dict[str, Counter[str]] = {}
    for row in report.rows:
        per_action.setdefault(row.action, Counter())[row.priority] += 1
    for action, counts in per_action.items():
        name = f"[{ACTION_STYLES.get(action, '')}]{action}[/]"
        view.add_row(name, *(str(counts[level]) for level in
                              ("critical", "high", "normal", "low")),
                      str(sum(counts.values())))
    return view


@click.command("import")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Only show what would be enqueued.")
@click.option("--backup", is_flag=True, help="Copy FILE to FILE.bak-<time> first.")
@click.option("--task", "task_name", default=DEFAULT_TASK, show_default=True,
              envvar="PIPELINE_IMPORT_TASK", help="The task each approved request is given to.")
@json_option
@reports_errors
def import_requests(path: str, dry_run: bool, backup: bool, task_name: str,
                    as_json: bool) -> None:
    """Import a pending-requests JSON file: approved requests become jobs.

    Pending requests are listed and not enqueued, completed ones skipped, and
    requests imported before (by id) are not enqueued again. Priority comes from
    urgency words, a 1-10 priority field and the approval status. A malformed
    entry stops the import before anything is enqueued, naming it and the field.
    """
    services = operator_services()
    out = console()
    with Progress(TextColumn("enqueueing"), BarColumn(), MofNCompleteColumn(),
                  console=out, transient=True,
                  disable=as_json or not out.is_terminal) as bar:
        task_id = bar.add_task("enqueue", total=None, visible=False)

        def advance(done: int, total: int) -> None:
            if total >= PROGRESS_FROM:
                bar.update(task_id, completed=done, total=total, visible=True)

        report = import_file(services, path, task_name=task_name, dry_run=dry_run, backup=backup,
                             progress=advance)
    if as_json:
        print_json(report.as_dict())
        return
    if report.backup:
        out.print(f"backup: {escape(report.backup)}")
    listed = report.counts.get(LISTED, 0)
    if listed:
        out.print(_rows_table(report, (LISTED,), f"pending review ({listed}): not enqueued"))
    shown = (ENQUEUE,) if dry_run else ("enqueued",)
    if any(row.action in shown for row in report.rows):
        out.print(_rows_table(report, shown, "would be enqueued" if dry_run else "enqueued"))
    out.print(_summary(report))
    count = report.counts.get(ENQUEUE if dry_run else "enqueued", 0)
    out.print(f"dry run: {count} request(s) would be enqueued as {task_name} jobs" if dry_run
              else f"{count} request(s) enqueued as {task_name} jobs (job id = request id)")
