"""Rich renderings of the operator views, shared by ``status``, ``locks`` and ``monitor``.

Each fits an 80-column terminal: long ids are cut to their first characters
(``--json`` and ``pipeline show`` give them whole).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipeline.cli.output import level_style, level_text, priority_text, span, styled
from pipeline.observe.inspection import (
    LEVELS,
    LockHeld,
    ParkedJob,
    RunningJob,
    SystemStatus,
    WorkerSeen,
    load_level,
)

ID_WIDTH = 13


def short(job_id: str, width: int = ID_WIDTH) -> str:
    """*job_id* cut to *width* characters (``…`` marks the cut)."""
    return job_id if len(job_id) <= width else job_id[:width - 1] + "…"


def _counts(values: Mapping[str, int], empty: str = "none") -> str:
    shown = [f"{escape(name)} {count}" for name, count in values.items() if count]
    return ", ".join(shown) if shown else styled(empty, "dim")


def table(*columns: str | tuple[str, dict[str, Any]], title: str = "") -> Table:
    """A borderless table with a ruled header: two spaces between columns.

    Each column is a name, or a (name, ``add_column`` options) pair.
    """
    found = Table(box=box.SIMPLE_HEAD, title=title or None, title_justify="left",
                  title_style="bold", pad_edge=False, expand=False, show_edge=False,
                  collapse_padding=True)
    for column in columns:
        name, options = (column, {}) if isinstance(column, str) else column
        found.add_column(name, **options)
    return found


def depth_table(found: SystemStatus) -> Table:
    """Queued messages and parked jobs per level, with their totals."""
    view = table(("", {"style": "bold"}),
                 *((priority_text(level), {"justify": "right"}) for level in LEVELS),
                 ("total", {"justify": "right", "style": "bold"}))
    view.add_row("queued", *(str(found.depth[level]) for level in LEVELS), str(found.queued))
    parked = found.parked_by_priority
    view.add_row("parked", *(str(parked[level]) for level in LEVELS), str(found.parked))
    return view


def worker_text(worker: WorkerSeen) -> str:
    """A worker's name, its load level and score, and whether its gate paused it."""
    text = escape(worker.name)
    if worker.level:
        text += f" {level_text(worker.level)}"
    if worker.score is not None:
        text += f" {worker.score:.2f}"
    if worker.running is not None and worker.slots is not None:
        text += f" ({worker.running}/{worker.slots} busy)"
    if not worker.accepting:
        text += " " + styled("paused" + (f": {escape(worker.pause_reason)}"
                                         if worker.pause_reason else ""), "bold red")
    return text


def summary_grid(found: SystemStatus, *, capacities: bool = True) -> Table:
    """Running jobs, what blocks the parked ones, locks, workers, dead letters, capacities."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    slots = found.capacities["global"]
    used = found.running + found.granted + found.between
    load = (f"{level_text(found.level)} ({used} of {slots} global slots, "
            f"{found.utilisation:.0%})" if found.utilisation is not None
            else f"{level_text(found.level)} ({used} holding; no global limit)")
    grid.add_row("load", load)
    grid.add_row("running", f"{found.running} running, {found.granted} handed their locks, "
                            f"{found.between} workflow(s) between steps")
    grid.add_row("parked by", _counts(found.parked_by_kind, "nothing parked"))
    grid.add_row("users", _counts(found.locks_by_user))
    grid.add_row("models", _counts(found.locks_by_model))
    grid.add_row("projects", _counts(found.locks_by_project))
    if found.workers is not None:
        names = [worker_text(w) for w in found.workers]
        grid.add_row("workers", f"{len(names)}: " + ", ".join(names) if names
                     else styled("none answered", "bold red"))
    dead = str(found.dead_letters)
    grid.add_row("dead letters", styled(dead, "bold red") if found.dead_letters else dead)
    if capacities:
        caps = ", ".join(f"{kind} {'unlimited' if n == 0 else n}"
                         for kind, n in found.capacities.items())
        grid.add_row("capacities", caps + (" (serialized: one job at a time)"
                                           if found.serialized else ""))
    return grid


def status_view(found: SystemStatus) -> RenderableType:
    """``pipeline status``: one screen."""
    heading = Text.from_markup(
        f"[bold]pipeline status[/]  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
        f"load {level_text(found.level)}")
    return Group(heading, depth_table(found), summary_grid(found))


def running_table(jobs: Sequence[RunningJob], *, limit: int | None = None,
                  title: str = "") -> Table:
    """Live holds: job, state, what it holds, where, for how long, lease left."""
    now = time.time()
    view = table(("job", {"no_wrap": True}), ("state", {}),
                 ("holds", {"overflow": "fold", "max_width": 30}),
                 ("where", {"overflow": "ellipsis", "no_wrap": True, "max_width": 16}),
                 ("for", {"justify": "right"}), ("lease", {"justify": "right"}),
                 title=title)
    for job in list(jobs)[:limit]:
        lease = (styled("expired", "bold red") if job.lease_expired
                 else span(job.expires - now))
        where = f"{job.host} {job.pid}".strip() or "-"
        view.add_row(escape(short(job.job_id)), job.state, escape(", ".join(job.resources)),
                     escape(where), span(now - job.since) if job.since else "-", lease)
    return view


def waited(seconds: float, timeout: float | None) -> str:
    """A wait so far, coloured by the load level of its share of *timeout*."""
    return level_style(span(seconds), load_level(seconds / timeout if timeout else None))


def parked_table(jobs: Sequence[ParkedJob], *, limit: int | None = None, title: str = "",
                 wait_timeout: float | None = None) -> Table:
    """Parked jobs: priority, what they wait for, behind whom, place in line, wait so far.

    With *wait_timeout*, each wait is coloured by its share of it (the load levels).
    """
    now = time.time()
    view = table(("job", {"no_wrap": True}), ("priority", {}),
                 ("waits for", {"overflow": "fold", "max_width": 18}),
                 ("behind", {"no_wrap": True}), ("pos", {"justify": "right"}),
                 ("waited", {"justify": "right"}), title=title)
    for job in list(jobs)[:limit]:
        view.add_row(escape(short(job.job_id)), priority_text(job.priority),
                     escape(job.waiting_for), escape(short(job.blocked_by)),
                     str(job.position),
                     waited(now - job.parked_at, wait_timeout) if job.parked_at else "-")
    return view


def locks_table(held: Sequence[LockHeld], *, full_ids: bool = True) -> Table:
    """Every resource held: mode, by whom, in which state, lease left."""
    now = time.time()
    view = table(("resource", {"overflow": "fold"}), ("mode", {}),
                 ("job", {"overflow": "fold"}), ("state", {}),
                 ("lease", {"justify": "right"}))
    for lock in held:
        job = lock.job_id if full_ids else short(lock.job_id)
        if lock.holder != lock.job_id:
            job += f" (workflow {lock.holder if full_ids else short(lock.holder)})"
        lease = (styled("expired", "bold red") if lock.lease_expired
                 else span(lock.expires - now))
        view.add_row(escape(lock.resource), lock.mode, escape(job), lock.state, lease)
    return view
