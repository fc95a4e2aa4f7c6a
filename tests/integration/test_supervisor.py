"""The supervisor of ``pipeline up`` restarts a child that fails, and gives up on one that
keeps failing fast (real child processes)."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.errors import ServiceError
from pipeline.runtime.launch import ChildSpec, Supervisor
from pipeline.runtime.restart import RestartPolicy
from tests.integration.locks.support import wait_for

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)"]
QUICK = RestartPolicy(first_delay=0.2, max_delay=1.0, fast=5.0, give_up_after=3)


@pytest.fixture
def output() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def supervisor(output: io.StringIO) -> Iterator[Supervisor]:
    with Supervisor(dict(os.environ), output=output, restart=QUICK, stop_timeout=5) as sup:
        yield sup


def run_in_thread(supervisor: Supervisor) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            supervisor.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def test_a_killed_child_is_started_again_after_a_delay_that_grows(
        supervisor: Supervisor, output: io.StringIO) -> None:
    child = supervisor.start(ChildSpec("worker", SLEEPER, "up"))
    thread, errors = run_in_thread(supervisor)
    try:
        for n in (1, 2):
            old = child.pid
            os.kill(old, signal.SIGKILL)
            wait_for(lambda n=n: child.restarts == n and child.ready.is_set())
            assert child.pid != old and child.process.poll() is None
        text = output.getvalue()
        assert f"worker (pid {old}) was killed by SIGKILL; starting it again in 0.4 s" in text
        assert "starting it again in 0.2 s (failure 1 in a row)" in text
        assert errors == []
    finally:
        supervisor.stop_event.set()
        thread.join(5)


def test_a_child_that_keeps_failing_fast_is_given_up_loudly(supervisor: Supervisor) -> None:
    supervisor.start(ChildSpec("beat", [sys.executable, "-c", "raise SystemExit(3)"]))
    started = time.monotonic()
    with pytest.raises(ServiceError, match=r"exited with code 3: 3 failures in a row, each "
                                           r"within 5 s of starting; giving up"):
        supervisor.run()
    assert supervisor.children[0].restarts == 2
    assert time.monotonic() - started < 5.0


def test_a_child_that_exits_cleanly_was_stopped_on_purpose_and_is_not_restarted(
        supervisor: Supervisor) -> None:
    child = supervisor.start(ChildSpec("recorder", SLEEPER, "up"))
    wait_for(child.ready.is_set)
    child.process.send_signal(signal.SIGTERM)
    with pytest.raises(ServiceError, match="was killed by SIGTERM: it was stopped on purpose"):
        supervisor.run()
    assert child.restarts == 0
