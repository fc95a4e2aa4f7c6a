"""The CLI's contract, over every command: ``--json``, and exit codes 0, 1 and 2.

0 ok; 1 an error, with one line ``Error: ...`` on stderr; 2 a usage error
(click's: an unknown option, a missing argument, a value of the wrong type).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from pipeline.cli.main import cli
from tests.integration.operator.conftest import invoke


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def _command(path: tuple[str, ...]) -> click.Command:
    found: click.Command = cli
    for name in path:
        assert isinstance(found, click.Group)
        found = found.commands[name]
    return found


EVERY_COMMAND = list(_commands(cli))

#: The commands that answer and end, each run with --json (the others run until stopped).
ANSWERING = [
    ["version"], ["status"], ["jobs"], ["stats"], ["locks", "list"], ["dlq", "list"],
    ["agents", "status"], ["agents", "allocate"], ["flush", "--dry-run"],
    ["monitor", "--once"], ["check", "--no-database"], ["db", "current"],
    ["db", "upgrade"], ["import", "{file}", "--dry-run"],
    ["submit", "lockprobes.hold", "0"], ["show", "{job}"], ["cancel", "{job}"],
    ["dlq", "requeue", "--yes"], ["dlq", "purge", "--yes"],
]


def test_every_command_is_listed_here() -> None:
    assert len(EVERY_COMMAND) > 25
    assert {tuple(a[:2]) if a[0] in ("locks", "dlq", "agents", "db") else (a[0],)
            for a in ANSWERING} | {("up",), ("worker",), ("beat",), ("demo",), ("recorder",),
                                   ("agent",), ("api",), ("flower",), ("reprioritize",),
                                   ("locks", "release"), ("db", "downgrade"),
                                   ("db", "check")} == set(EVERY_COMMAND)


@pytest.mark.parametrize("path", EVERY_COMMAND, ids=" ".join)
def test_every_command_has_json(path: tuple[str, ...]) -> None:
    options = [param for param in _command(path).params if isinstance(param, click.Option)]
    assert any("--json" in option.opts for option in options), f"pipeline {' '.join(path)}"
    shown = invoke(*path, "--help")
    assert shown.exit_code == 0 and "--json" in shown.stdout


@pytest.mark.parametrize("args", ANSWERING, ids=lambda a: " ".join(a[:2]))
def test_every_answering_command_prints_json(args: list[str], ops_app: Any,
                                             tmp_path: Path) -> None:
    requests = tmp_path / "requests.json"
    requests.write_text("[]")
    from tests.tasks.lockprobes import hold

    job = hold.apply_async((0.0,)).id
    argv = [a.replace("{file}", str(requests)).replace("{job}", job) for a in args]
    if argv[0] == "db":
        argv += ["--url", ops_app.conf.pipeline_store_url]
    outcome = invoke(*argv, "--json")
    assert outcome.exit_code == 0, outcome.output
    json.loads(outcome.stdout)


@pytest.mark.parametrize("args", [
    ["no-such-command"], ["jobs", "--no-such-option"], ["show"], ["jobs", "--limit", "0"],
    ["stats", "--top", "many"], ["locks", "release"], ["dlq", "list", "--limit", "x"],
], ids=" ".join)
def test_a_usage_error_exits_2(args: list[str]) -> None:
    outcome = invoke(*args)
    assert outcome.exit_code == 2
    assert "Usage: " in outcome.stderr and "Error: " in outcome.stderr
    assert outcome.stdout == ""


@pytest.mark.parametrize("args", [
    ["show", "no-such-job"], ["jobs", "--since", "yesterday"], ["jobs", "-s", "sleeping"],
    ["reprioritize", "no-such-job", "high"], ["locks", "release", "model:nobody", "--yes"],
], ids=" ".join)
def test_an_error_exits_1_with_one_line(args: list[str], ops_app: Any) -> None:
    outcome = invoke(*args)
    assert outcome.exit_code == 1
    assert outcome.stderr.startswith("Error: ") and outcome.stderr.count("\n") == 1
