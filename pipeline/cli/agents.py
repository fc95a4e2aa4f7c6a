"""``pipeline agents status|allocate``: the workers' load, and where capacity is needed.

Read from the load records the workers publish (:mod:`pipeline.admission`):
a worker that stopped publishing for ``pipeline_agent_timeout`` is gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from pipeline.admission import AgentStatus, Allocation, LoadLevel, allocate, list_agents
from pipeline.cli.context import operator_services, reports_errors

#: Colour of each load level (shared by every screen that shows levels).
LEVEL_COLOURS: dict[LoadLevel, str] = {
    LoadLevel.LOW: "green",
    LoadLevel.MODERATE: "yellow",
    LoadLevel.HIGH: "dark_orange",
    LoadLevel.CRITICAL: "bold red",
}

#: ``--sort-by`` keys: how each orders the workers (numbers: most loaded first).
SORT_KEYS: dict[str, Callable[[AgentStatus], Any]] = {
    "name": lambda a: a.name,
    "score": lambda a: -a.score,
    "level": lambda a: (-list(LoadLevel).index(a.level), -a.score),
    "cpu": lambda a: -a.cpu,
    "memory": lambda a: -a.memory,
    "depth": lambda a: -a.queue_depth,
    "jobs": lambda a: -a.running,
    "beat": lambda a: -a.beat_at,
}


def sort_agents(agents: Sequence[AgentStatus], key: str) -> list[AgentStatus]:
    """*agents* ordered by ``--sort-by`` *key* (ties by name)."""
    order = SORT_KEYS[key]
    return sorted(agents, key=lambda a: (order(a), a.name))


def _state(agent: AgentStatus) -> str:
    if agent.accepting:
        return "[green]accepting[/green]"
    return f"[bold red]paused[/bold red]: {agent.pause_reason}"


def status_table(agents: Sequence[AgentStatus], now: float | None = None) -> Table:
    """The workers as a table, one row each."""
    table = Table(show_header=True, header_style="bold")
    for column in ("worker", "level", "score", "cpu", "memory", "jobs", "depth", "state",
                   "beat"):
        table.add_column(column, overflow="fold")
    for agent in agents:
        colour = LEVEL_COLOURS[agent.level]
        table.add_row(
            agent.name, f"[{colour}]{agent.level.value}[/{colour}]", f"{agent.score:.2f}",
            f"{agent.cpu:.0%}", f"{agent.memory:.0%}", f"{agent.running}/{agent.slots}",
            f"{agent.queue_depth:.0%}", _state(agent), f"{agent.age(now):.1f}s ago")
    return table


def allocation_lines(found: Allocation) -> list[str]:
    """The recommendation in a few lines."""
    pressure = f"yes: {found.backpressure_reason}" if found.backpressure else "no"
    used = "-" if found.utilisation is None else f"{found.utilisation:.0%}"
    return [
        f"workers: {found.workers} live, {found.accepting} taking jobs; capacity "
        f"{found.capacity} processes (the slots of those taking jobs, the jobs paused ones "
        f"still run)",
        f"jobs: {found.running} running, {found.waiting} waiting in the broker; "
        f"utilisation {used} (target at most 80%)",
        f"new work goes to: {found.least_loaded or '-'}",
        f"backpressure: {pressure}",
        f"recommendation: {found.action} {found.processes} process(es) "
        f"(target {found.target_processes}): {found.reason}",
    ]


@click.group()
def agents() -> None:
    """The workers' load (score, level, gate) and where capacity is needed."""


@agents.command()
@click.option("--sort-by", "sort_by", type=click.Choice(sorted(SORT_KEYS)), default="name",
              show_default=True, help="Order of the workers (numbers: most loaded first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@reports_errors
def status(sort_by: str, as_json: bool) -> None:
    """Show every live worker: load score and level, CPU, memory, jobs, whether it takes jobs."""
    found = sort_agents(list_agents(operator_services()), sort_by)
    if as_json:
        click.echo(json.dumps([a.as_dict() for a in found], indent=2))
        return
    if not found:
        click.echo("no live worker publishes its load (none running, or "
                   "pipeline_agent_heartbeat = 0)")
        return
    Console(width=max(Console().width, 120)).print(status_table(found, time.time()))
    paused = sum(1 for a in found if not a.accepting)
    click.echo(f"{len(found)} worker(s), {paused} paused by the load gate")


@agents.command(name="allocate")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@reports_errors
def allocate_command(as_json: bool) -> None:
    """Recommend where new work goes and how many worker processes to add or remove."""
    found = allocate(operator_services())
    if as_json:
        click.echo(json.dumps(found.as_dict(), indent=2))
        return
    for line in allocation_lines(found):
        click.echo(line)
