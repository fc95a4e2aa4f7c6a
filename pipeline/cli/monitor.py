"""``pipeline monitor``: a live view of the system that fits an 80-column terminal.

Every ``--interval`` seconds (2 by default) it redraws the depth per priority,
the running and parked jobs (with what they wait for and their place in
line), the locks by user, model and project, and the workers. Colours follow
the load levels: green below 50 % of the global slots, yellow from 50 %, red
from 80 % (the utilisation to stay under), red on white from 95 %; a parked
job's wait is coloured by the same shares of ``pipeline_wait_timeout``.
``q`` or Ctrl-C quits and gives the terminal back as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Iterator
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from pipeline.cli.context import operator_services, reports_errors
from pipeline.cli.output import console, level_text, show
from pipeline.cli.views import depth_table, parked_table, running_table, summary_grid
from pipeline.observe import inspection
from pipeline.observe.inspection import SystemStatus, WorkerSeen
from pipeline.runtime.services import Services

QUIT_KEYS = ("q", "Q")
#: Lines the frame needs besides the job rows (heading, tables' heads, summary).
FIXED_LINES = 18


class WorkerWatch:
    """Asks the workers in the background, so a slow answer never delays a frame."""

    def __init__(self, services: Services, every: float = 5.0, timeout: float = 1.0) -> None:
        self.services = services
        self.every = every
        self.timeout = timeout
        self.latest: tuple[WorkerSeen, ...] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor-workers", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a failed ask keeps the last answer
                self.latest = tuple(inspection.workers(self.services, self.timeout))
            self._stop.wait(self.every)

    def __enter__(self) -> WorkerWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()


def frame(services: Services, *, rows: int, interval: float,
          workers: tuple[WorkerSeen, ...] | None) -> RenderableType:
    """One screen of the monitor."""
    found: SystemStatus = dataclasses.replace(inspection.status(services, with_workers=False),
                                              workers=workers)
    running = inspection.running_jobs(services)
    parked = inspection.parked_jobs(services, limit=rows)
    heading = Text.from_markup(
        f"[bold]pipeline monitor[/]  {time.strftime('%H:%M:%S')}  every {interval:g}s  "
        f"load {level_text(found.level)}  [dim]q quits[/]")
    parked_view = parked_table(parked, title=f"parked: {found.parked}, longest first",
                               wait_timeout=services.settings.wait_timeout)
    parts: list[RenderableType] = [
        heading, depth_table(found),
        running_table(running, limit=rows, title=f"running: {len(running)}"),
        parked_view, summary_grid(found, capacities=False)]
    if workers is None:
        parts.append(Text("workers: asking...", style="dim"))
    return Group(*parts)


def snapshot(services: Services, *, rows: int, workers: tuple[WorkerSeen, ...] | None
             ) -> dict[str, Any]:
    """What one frame shows, as JSON-ready data."""
    found = dataclasses.replace(inspection.status(services, with_workers=False), workers=workers)
    return {**found.as_dict(),
            "running_jobs": [job.as_dict() for job in inspection.running_jobs(services)],
            "parked_jobs": [job.as_dict() for job in inspection.parked_jobs(services, limit=rows)]}


def _json_lines(services: Services, *, interval: float, rows: int, once: bool) -> None:
    if once:
        seen = tuple(inspection.workers(services))
        click.echo(json.dumps(snapshot(services, rows=rows, workers=seen), default=str))
        return
    with WorkerWatch(services) as watch, contextlib.suppress(KeyboardInterrupt):
        while True:
            line = json.dumps(snapshot(services, rows=rows, workers=watch.latest), default=str)
            click.echo(line)
            time.sleep(interval)


@contextlib.contextmanager
def keys_read() -> Iterator[Any]:
    """Read single keys from the terminal (cbreak mode), restoring its settings after.

    Yields a function ``wait(seconds) -> key or ""``: it returns as soon as a key
    is pressed, or after *seconds*. Without a terminal on stdin it only waits.
    """
    stream = sys.stdin
    if not stream.isatty():

        def sleep(seconds: float) -> str:
            time.sleep(seconds)
            return ""

        yield sleep
        return
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)

        def wait(seconds: float) -> str:
            ready, _, _ = select.select([fd], [], [], seconds)
            return os.read(fd, 1).decode(errors="replace") if ready else ""

        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@click.command()
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(min=0.2),
              help="Seconds between refreshes.")
@click.option("--rows", default=0, type=click.IntRange(min=0),
              help="Running and parked jobs shown (default: what the terminal height allows).")
@click.option("--once", is_flag=True, help="Draw one screen and exit.")
@click.option("--svg", metavar="FILE", default=None,
              help="With --once: also save the screen as an SVG picture in FILE.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per refresh (one line each) instead of a screen.")
@reports_errors
def monitor(interval: float, rows: int, once: bool, svg: str | None, as_json: bool) -> None:
    """Watch the pipeline live: depth, running and parked jobs, locks, workers (q quits)."""
    services = operator_services()
    if as_json:
        _json_lines(services, interval=interval, rows=rows or 20, once=once)
        return
    out = console()
    height = out.size.height if out.is_terminal else 40
    shown = rows or max(3, (height - FIXED_LINES) // 2)
    if once:
        seen = tuple(inspection.workers(services))
        show(frame(services, rows=shown, interval=interval, workers=seen), svg,
             title="pipeline monitor")
        return
    with WorkerWatch(services) as watch, keys_read() as wait:
        if not out.is_terminal:  # piped: one screen after the other, like `top -b`
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    out.print(frame(services, rows=shown, interval=interval, workers=watch.latest))
                    time.sleep(interval)
            return
        with Live(console=out, screen=True, auto_refresh=False) as live, \
                contextlib.suppress(KeyboardInterrupt):
            while True:
                live.update(frame(services, rows=shown, interval=interval, workers=watch.latest),
                            refresh=True)
                if wait(interval) in QUIT_KEYS:
                    break
