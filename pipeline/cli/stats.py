"""``pipeline stats``: wait, run time, outcomes and lock contention from the job store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipeline.cli.context import get_context, live_services, load_app, reports_errors
from pipeline.cli.jobs import store_url_of
from pipeline.cli.output import console, json_option, print_json, span
from pipeline.cli.views import table
from pipeline.observe.inspection.live import LEVELS, label, queue_depth
from pipeline.observe.timewindow import parse_since
from pipeline.store import stats as store_stats
from pipeline.store.session import session_scope
from pipeline.store.stats import Durations, Summary


def _depth_table(found: Summary) -> Table:
    per_level = {level: {"QUEUED": 0, "BLOCKED": 0} for level in [*LEVELS, "-"]}
    for priority, counts in found.depth.items():
        row = per_level[label(priority) or "-"]
        for state, count in counts.items():
            row[state] += count
    view = table(title="waiting now (job store)")
    view.add_column("")
    for level in LEVELS:
        view.add_column(level, justify="right")
    for state in ("QUEUED", "BLOCKED"):
        view.add_row(state.lower(), *(str(per_level[level][state]) for level in LEVELS))
    return view


def _times_table(found: Summary) -> Table:
    view = table()
    for name in ("", "jobs", "average", "p95"):
        view.add_column(name, justify="left" if not name else "right")
    rows: tuple[tuple[str, Durations], ...] = (
        ("wait (queued to start)", found.wait), ("execution", found.execution),
        ("lock wait (parked to start)", found.lock_wait))
    for name, durations in rows:
        view.add_row(name, str(durations.count), span(durations.average),
                      span(durations.p95))
    return view


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _rates_text(found: Summary) -> Text:
    rates = found.rates
    states = ", ".join(f"{s.lower()} {n}" for s, n in rates.by_state.items() if n)
    return Text(f"finished {rates.finished} ({states or 'none'}): completion "
                f"{_share(rates.completion_rate)}, failure {_share(rates.failure_rate)}, "
                f"{rates.completed_per_minute:.2f} completed/min")


def _contention_table(found: Summary) -> Table:
    view = table(title="contention (most parked-behind resources)")
    for name in ("resource", "times blocked", "jobs", "average wait"):
        view.add_column(name, justify="left" if name == "resource" else "right")
    for row in found.contention:
        view.add_row(escape(row.resource), str(row.blocked), str(row.jobs),
                      span(row.average_wait))
    return view


@click.command()
@click.option("--since", default="1h", show_default=True,
              help="Start of the window: 30m, 2h, 7d, or an ISO date.")
@click.option("--until", default=None, help="End of the window (default: now).")
@click.option("--top", default=10, show_default=True,
              help="How many resources to list by contention.")
@json_option
@reports_errors
def stats(since: str, until: str | None, top: int, as_json: bool) -> None:
    """Waiting now, wait and run times, outcome rates and lock contention (job store).

    With Redis answering, also the messages in the broker's lists now; without,
    a warning says the live part is missing (``--json``: ``"live": false``).
    """
    app = load_app(get_context().app_name)
    services = live_services(app)
    in_broker = queue_depth(services) if services is not None else None
    end = parse_since(until, field="until") if until else datetime.now(timezone.utc)
    start = parse_since(since, now=end)
    if start >= end:
        start = end - timedelta(seconds=1)
    with session_scope(store_url_of(app)) as session:
        found = store_stats.summary(session, start, end, top)
    if as_json:
        print_json({**found.as_dict(), "live": services is not None, "in_broker": in_broker})
        return
    heading = Text.from_markup(
        f"[bold]pipeline stats[/]  {start.astimezone():%Y-%m-%d %H:%M} to "
        f"{end.astimezone():%Y-%m-%d %H:%M}")
    parts: list[Table | Text] = [heading, _depth_table(found), _times_table(found),
                                 _rates_text(found)]
    if in_broker is not None:
        parts.append(Text("in the broker's lists now: " + ", ".join(
            f"{level} {in_broker[level]}" for level in LEVELS)))
    if found.contention:
        parts.append(_contention_table(found))
    console().print(Group(*parts))
