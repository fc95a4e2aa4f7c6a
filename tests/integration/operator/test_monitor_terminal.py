"""``pipeline monitor`` in a real pseudo-terminal of 80 x 24, driven with pexpect."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pexpect
import pytest

from tests.helpers.commands import CLI, ROOT
from tests.integration.operator.support import lock, model, user

PROMPT = "READY> "


@pytest.fixture
def shell(app: Any, redis_url: str) -> Iterator[pexpect.spawn]:
    """A bash in an 80 x 24 terminal whose pipeline commands use the test's Redis."""
    env = {**os.environ, "PIPELINE_BROKER_URL": redis_url, "PS1": PROMPT, "TERM": "xterm",
           "COLUMNS": "80", "LINES": "24"}
    child = pexpect.spawn("bash", ["--norc", "--noprofile"], cwd=str(ROOT), env=env,
                          dimensions=(24, 80), encoding="utf-8", timeout=20)
    child.expect_exact(PROMPT)
    yield child
    child.close(force=True)


def start_monitor(shell: pexpect.spawn) -> None:
    shell.sendline(f"{sys.executable} -c '{CLI}' monitor --interval 0.3; echo EXIT=$?")
    shell.expect_exact("pipeline monitor")


def terminal_is_usable(shell: pexpect.spawn) -> None:
    """The monitor left the alternate screen, showed the cursor and restored the tty modes."""
    shell.expect(r"EXIT=(\d+)")
    assert shell.match.group(1) == "0"
    assert "\x1b[?1049l" in shell.before and "\x1b[?25h" in shell.before
    shell.expect_exact(PROMPT)
    shell.sendline("stty -a | tr ' ;' '\\n\\n' | grep -x -- '-\\?icanon\\|-\\?echo'")
    shell.expect_exact(PROMPT)
    modes = set(shell.before.split()) & {"icanon", "-icanon", "echo", "-echo"}
    assert modes == {"icanon", "echo"}, shell.before


def test_monitor_shows_a_parked_job_and_quits_on_q(shell: pexpect.spawn, app: Any) -> None:
    lock(app, "holder-job", user("alice"), model("bert"))
    lock(app, "parked-job", model("bert"), priority=3)
    start_monitor(shell)
    shell.expect_exact("parked: 1, longest first")
    shell.expect_exact("parked-job")
    shell.expect_exact("model:bert")
    shell.expect_exact("holder-job")
    shell.send("q")
    terminal_is_usable(shell)


def test_monitor_quits_on_ctrl_c_and_gives_the_terminal_back(
        shell: pexpect.spawn, app: Any) -> None:
    start_monitor(shell)
    shell.expect_exact("running: 0")
    shell.sendintr()
    terminal_is_usable(shell)
