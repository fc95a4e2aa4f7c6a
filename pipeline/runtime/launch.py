"""Starting the worker and beat as child processes and supervising them.

Every child runs in a process group of its own (its own session), so a Ctrl-C
in the terminal reaches only the supervisor, which then stops the children in
order: the worker and beat first (they still need the broker to shut down
cleanly), the embedded Redis last. Stopping a child sends SIGTERM to its leader
(Celery's warm shutdown lets running jobs finish), waits, then sends SIGKILL
to the whole group, so no pool process is left behind. On Linux each child
also asks the kernel for SIGTERM should the supervisor itself be killed. A
child that fails while supervised is started again with a growing delay, and
given up on after repeated fast failures (:mod:`pipeline.runtime.restart`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import IO, cast

import psutil

from pipeline.errors import ServiceError
from pipeline.runtime.restart import RestartPolicy, describe_exit, failed

DEFAULT_APP = "tasks.app"
DEFAULT_QUEUE = "pipeline"
STOP_TIMEOUT = 10.0
WORKER_READY = " ready."
BEAT_READY = "beat: Starting..."
_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return cast(Callable[..., int], ctypes.CDLL(None, use_errno=True).prctl)
    except (OSError, AttributeError):
        return None


# Resolved once here: the child between fork and exec should do as little as possible.
_PRCTL = _load_prctl()


def die_with_parent() -> None:
    """``preexec_fn`` of a child: on Linux, receive SIGTERM when the parent dies.

    The kernel sends it when the thread that started the child exits, so start
    children from the main thread.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def worker_argv(app: str = DEFAULT_APP, queues: Sequence[str] = (DEFAULT_QUEUE,),
                concurrency: int | None = None, pool: str = "prefork",
                loglevel: str = "INFO", hostname: str | None = None,
                extra: Sequence[str] = ()) -> list[str]:
    """The command line of a Celery worker of *app* consuming *queues*."""
    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", ",".join(queues),
            "--pool", pool, "--loglevel", loglevel,
            "-n", hostname or f"pipeline{os.getpid()}@%h"]
    if concurrency is not None:
        argv += ["-c", str(concurrency)]
    return argv + list(extra)


def beat_argv(app: str = DEFAULT_APP, data_dir: str = ".pipeline",
              loglevel: str = "INFO", extra: Sequence[str] = ()) -> list[str]:
    """The command line of Celery beat, keeping its schedule file under *data_dir*."""
    return [sys.executable, "-m", "celery", "-A", app, "beat", "--loglevel", loglevel,
            "--schedule", os.path.join(data_dir, "celerybeat-schedule"),
            "--pidfile", os.path.join(data_dir, "beat.pid"), *extra]


@contextlib.contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """Turn SIGINT, SIGTERM and SIGHUP into an event for the block's duration."""
    stop = threading.Event()

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    wanted = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {sig: signal.signal(sig, _handler) for sig in wanted}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True)
class ChildSpec:
    """A child process to run: its *name* (prefix of its output) and command line.

    ``ready_marker`` is a piece of output that means the child is ready; None
    means ready as soon as it started.
    """

    name: str
    argv: list[str]
    ready_marker: str | None = None


@dataclass
class Child:
    """A started child process (the latest one, once it was restarted)."""

    spec: ChildSpec
    process: subprocess.Popen[bytes]
    ready: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None
    started_at: float = field(default_factory=time.monotonic)
    #: Failures in a row, each soon after a start (see :class:`RestartPolicy`).
    failures: int = 0
    restarts: int = 0
    #: When a restart is due (monotonic clock), while the child is down.
    restart_at: float | None = None

    @property
    def pid(self) -> int:
        """The pid of the child (also its process group id)."""
        return int(self.process.pid)


class Supervisor:
    """Runs child processes in the foreground and stops all of them on exit.

    Args:
        env: the children's environment.
        output: where the children's output goes, each line prefixed with the
            child's name; ``sys.stderr`` when omitted.
        stop_event: set it (see :func:`stop_signals`) to end :meth:`run`.
        stop_timeout: seconds a child gets between SIGTERM and SIGKILL.
        restart: when a child that failed is started again (see
            :mod:`pipeline.runtime.restart`).
    """

    def __init__(self, env: Mapping[str, str], *, output: IO[str] | None = None,
                 stop_event: threading.Event | None = None,
                 stop_timeout: float = STOP_TIMEOUT, cwd: str | None = None,
                 restart: RestartPolicy | None = None) -> None:
        self.env = dict(env)
        self.output = output if output is not None else sys.stderr
        self.stop_event = stop_event or threading.Event()
        self.stop_timeout = stop_timeout
        self.cwd = cwd
        self.restart = restart or RestartPolicy()
        self.children: list[Child] = []
        self._write_lock = threading.Lock()

    def start(self, spec: ChildSpec) -> Child:
        """Start *spec* in a new process group and forward its output."""
        child = Child(spec, self._spawn(spec))
        self._watch(child)
        self.children.append(child)
        return child

    def _spawn(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            spec.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def _watch(self, child: Child) -> None:
        """Mark *child* ready or not, and forward its output from a thread."""
        if child.spec.ready_marker is None:
            child.ready.set()
        child.reader = threading.Thread(target=self._forward, args=(child, child.process),
                                        name=f"output-{child.spec.name}", daemon=True)
        child.reader.start()

    def _forward(self, child: Child, process: subprocess.Popen[bytes]) -> None:
        stream = process.stdout
        if stream is None:
            return
        marker = child.spec.ready_marker
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            if marker is not None and marker in line:
                child.ready.set()
            with self._write_lock, contextlib.suppress(ValueError, OSError):
                self.output.write(f"{child.spec.name} | {line}\n")
                self.output.flush()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Wait until every child is ready.

        Returns:
            False if a stop was requested meanwhile.

        Raises:
            ServiceError: a child exited or was not ready within *timeout*.
        """
        deadline = time.monotonic() + timeout
        while not all(child.ready.is_set() for child in self.children):
            if self.stop_event.is_set():
                return False
            self.check_children()
            if time.monotonic() > deadline:
                waiting = [c.spec.name for c in self.children if not c.ready.is_set()]
                raise ServiceError(f"{', '.join(waiting)} not ready after {timeout:.0f} s")
            self.stop_event.wait(0.1)
        return True

    def check_children(self) -> None:
        """Raise ``ServiceError`` if a child has exited."""
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise ServiceError(f"{child.spec.name} (pid {child.pid}) exited with code "
                                   f"{code}; its output is above")

    def run(self) -> None:
        """Supervise in the foreground until a stop is requested.

        A child that fails is started again (see :mod:`pipeline.runtime.restart`).

        Raises:
            ServiceError: a child exited cleanly (someone stopped it), or failed
                again and again soon after each start (the others are then stopped).
        """
        while not self.stop_event.wait(0.2):
            self.supervise_once()

    def supervise_once(self) -> None:
        """Look at every child once: schedule a restart for a failed one, start one that is due.

        Raises:
            ServiceError: as :meth:`run`.
        """
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._restart(child)
                continue
            code = child.process.poll()
            if code is None:
                continue
            name = f"{child.spec.name} (pid {child.pid})"
            if not failed(code):
                raise ServiceError(f"{name} {describe_exit(code)}: it was stopped on purpose, "
                                   "so everything stops; its output is above")
            child.failures = self.restart.failures_after(child.failures, now - child.started_at)
            if self.restart.gives_up(child.failures):
                raise ServiceError(
                    f"{name} {describe_exit(code)}: {child.failures} failures in a row, each "
                    f"within {self.restart.fast:g} s of starting; giving up on it and "
                    "stopping everything; its output is above")
            delay = self.restart.delay(child.failures)
            with contextlib.suppress(OSError):  # what is left of its group (a pool)
                os.killpg(child.pid, signal.SIGKILL)
            child.restart_at = now + delay
            self._say(f"{name} {describe_exit(code)}; starting it again in {delay:g} s "
                      f"(failure {child.failures} in a row)")

    def _restart(self, child: Child) -> None:
        child.process = self._spawn(child.spec)
        child.ready = threading.Event()
        child.started_at = time.monotonic()
        child.restart_at = None
        child.restarts += 1
        self._watch(child)
        self._say(f"{child.spec.name} started again (pid {child.pid}, restart {child.restarts})")

    def _say(self, message: str) -> None:
        with self._write_lock, contextlib.suppress(ValueError, OSError):
            self.output.write(f"pipeline: {message}\n")
            self.output.flush()

    def stop(self) -> None:
        """Stop every child: SIGTERM to each leader, wait, then SIGKILL each group."""
        live = [child for child in self.children if child.process.poll() is None]
        members = {child.pid: _group_members(child.pid) for child in self.children}
        for child in live:
            with contextlib.suppress(OSError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(max(0.0, deadline - time.monotonic()))
        for child in self.children:
            with contextlib.suppress(OSError):
                os.killpg(child.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(self.stop_timeout)
            _wait_gone(members.get(child.pid, []), self.stop_timeout)
            if child.reader is not None:
                child.reader.join(2.0)
        self.children = []

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _group_members(pgid: int) -> list[psutil.Process]:
    """The processes of group *pgid* (the leader and, say, its prefork pool)."""
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
    return members


def _wait_gone(procs: Sequence[psutil.Process], timeout: float) -> None:
    """Wait until *procs* exited (zombies count as gone), killing stragglers."""
    deadline = time.monotonic() + timeout
    pending = list(procs)
    while pending:
        pending = [p for p in pending if _alive(p)]
        if not pending:
            return
        if time.monotonic() > deadline:
            for proc in pending:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            return
        time.sleep(0.05)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
