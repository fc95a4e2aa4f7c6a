"""``pipeline demo``: run a small mixed workload and show what ran when.

With no broker configured it starts the embedded Redis and a worker with two
processes itself, submits the workload of the jobs module (``tasks.demo`` by
default: several users, all four priorities, jobs sharing a model), shows
their progress live and ends with a table of the order they started in, how
long each waited (queued -> started) and ran. Times come from the jobs'
results, so the demo does not depend on the job store.
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pipeline.cli.context import child_env, get_context, load_app, reports_errors, use_broker
from pipeline.cli.output import json_option, print_json
from pipeline.errors import ServiceError
from pipeline.runtime.embedded import data_dir
from pipeline.runtime.launch import WORKER_READY, ChildSpec, Supervisor, stop_signals, worker_argv

_STATE_STYLES = {"queued": "dim", "BLOCKED": "yellow", "running": "cyan", "done": "green",
                 "FAILURE": "bold red"}


@dataclass
class Tracked:
    """One submitted demo job and what is known about it."""

    number: int
    label: str
    user: str
    priority: str
    resources: str
    result: Any
    queued: float
    state: str = "queued"
    parked: str = ""
    outcome: dict[str, Any] = field(default_factory=dict)

    def poll(self) -> None:
        """Refresh :attr:`state` from the result backend."""
        if self.outcome or self.state == "FAILURE":
            return
        state = self.result.state
        if state == "SUCCESS":
            self.outcome = dict(self.result.result)
            self.state = "done"
        elif state == "BLOCKED":
            self.state = "BLOCKED"
            info = self.result.info
            self.parked = str(info.get("reason", "")) if isinstance(info, dict) else ""
        elif state == "STARTED":
            self.state = "running"
        elif state == "FAILURE":
            self.state = "FAILURE"
            self.parked = repr(self.result.result)


def _submit(module_name: str) -> list[Tracked]:
    module = importlib.import_module(module_name)
    tracked = []
    for number, job in enumerate(module.workload(), start=1):
        options = dict(job["options"])
        models = options.get("models") or options.get("shared") or []
        mode = "reads" if "shared" in options else "writes"
        resources = f"{mode} {', '.join(models)}" if models else "-"
        task = job["task"]
        queued = time.time()
        result = task.apply_async(tuple(job["args"]), **options)
        label = f"{task.name.rsplit('.', 1)[-1]} {job['args'][0]}"
        tracked.append(Tracked(number, label, str(options.get("user", "-")),
                               str(options.get("priority", "normal")), resources, result, queued))
    return tracked


def _progress(jobs: list[Tracked]) -> Table:
    table = Table(title="pipeline demo: jobs", title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False)
    for column in ("#", "job", "user", "priority", "model", "state", "why waiting"):
        table.add_column(column)
    for job in jobs:
        style = _STATE_STYLES.get(job.state, "")
        why = job.parked if job.state == "BLOCKED" else ""
        table.add_row(str(job.number), job.label, job.user, job.priority, job.resources,
                      f"[{style}]{job.state}[/{style}]", why)
    return table


def _summary(jobs: list[Tracked]) -> Table:
    table = Table(title="what ran, in the order it started", title_justify="left",
                  caption="* parked until its resources were free", caption_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("#", "job", "user", "priority", "model", "pid", "waited", "ran"):
        table.add_column(column, justify="right" if column in ("waited", "ran") else "left",
                         no_wrap=True)
    ordered = sorted(jobs, key=lambda job: job.outcome["started"])
    for order, job in enumerate(ordered, start=1):
        started, finished = job.outcome["started"], job.outcome["finished"]
        waited = f"{max(0.0, started - job.queued):.2f}s" + ("*" if job.parked else " ")
        table.add_row(str(order), job.label, job.user, job.priority,
                      job.resources, str(job.outcome["pid"]), waited,
                      f"{finished - started:.2f}s ")
    return table


def _summary_rows(jobs: list[Tracked]) -> list[dict[str, Any]]:
    """What ran, in the order it started, as ``--json`` prints it."""
    ordered = sorted(jobs, key=lambda job: job.outcome["started"])
    return [{"order": order, "id": job.result.id, "job": job.label, "user": job.user,
             "priority": job.priority, "resources": job.resources, "pid": job.outcome["pid"],
             "waited": round(max(0.0, job.outcome["started"] - job.queued), 3),
             "ran": round(job.outcome["finished"] - job.outcome["started"], 3),
             "parked": bool(job.parked)}
            for order, job in enumerate(ordered, start=1)]


def _follow(jobs: list[Tracked], console: Console, sup: Supervisor, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with Live(_progress(jobs), console=console, refresh_per_second=8) as live:
        while True:
            for job in jobs:
                job.poll()
            live.update(_progress(jobs))
            if all(job.state in ("done", "FAILURE") for job in jobs):
                break
            if sup.stop_event.is_set():
                raise click.Abort()
            if time.monotonic() > deadline:
                left = ", ".join(j.label for j in jobs if j.state not in ("done", "FAILURE"))
                raise ServiceError(f"the demo did not finish within {timeout:.0f} s; "
                                   f"still waiting for: {left}")
            sup.check_children()
            time.sleep(0.2)
    failed = [job for job in jobs if job.state == "FAILURE"]
    if failed:
        raise ServiceError(f"{len(failed)} demo job(s) failed: "
                           + "; ".join(f"{j.label}: {j.parked}" for j in failed))


@click.command()
@click.option("--jobs-module", default="tasks.demo", show_default=True,
              help="Module whose workload() lists the jobs to submit.")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=2, show_default=True,
              help="Processes of the demo's worker.")
@click.option("--timeout", type=float, default=50.0, show_default=True,
              help="Seconds the workload may take.")
@json_option
@reports_errors
def demo(jobs_module: str, concurrency: int, timeout: float, as_json: bool) -> None:
    """Run a small mixed workload on a worker of its own and show what ran when.

    With ``--json``, the progress goes to stderr and what ran, in order, to stdout as JSON.
    """
    console = Console(stderr=as_json)
    if not console.is_terminal:
        console = Console(width=100, stderr=as_json)
    app_name = get_context().app_name
    with stop_signals() as stop, use_broker() as url:
        log_path = os.path.join(data_dir(), "demo-worker.log")
        with open(log_path, "w", encoding="utf-8") as log, \
                Supervisor(child_env(url), output=log, stop_event=stop) as sup:
            argv = worker_argv(app_name, concurrency=concurrency,
                               hostname=f"demo{os.getpid()}@%h", extra=["-I", jobs_module])
            sup.start(ChildSpec("worker", argv, WORKER_READY))
            console.print(f"broker {url}; starting a worker with {concurrency} processes "
                          f"(log: {log_path})")
            if not sup.wait_ready(60.0):
                raise click.Abort()
            load_app(app_name, url)
            jobs = _submit(jobs_module)
            console.print(f"submitted {len(jobs)} jobs")
            _follow(jobs, console, sup, timeout)
            console.print()
            if not as_json:
                console.print(_summary(jobs))
        console.print("demo finished: every process it started has stopped")
        if as_json:
            print_json(_summary_rows(jobs))
