"""Fault scenarios of whole processes: a killed worker, a restarted Redis, a long countdown.

4. the whole worker (main process and pool) killed with SIGKILL under load, and
   started again as a supervisor would: nothing lost, nothing run twice, no
   lock left, the killed jobs run again once the worker counts as silent;
8. Redis (append-only file on) restarted under load: the workers resume, nothing
   lost, nothing run twice;
9. a job whose countdown is longer than the visibility timeout runs once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from tests.faults.probes import work
from tests.faults.rig import Figure, Rig, wait_until

#: Seconds kombu's Redis transport waits between two looks for messages of silent workers.
RESTORE_EVERY = 5.0


def _open_runs_on(rig: Rig, pids: set[int]) -> list[str]:
    """Jobs whose run started in one of *pids* and has not finished."""
    return [r.job_id for r in rig.ledger.runs() if r.pid in pids and not r.finished]


def kill_workers(rig: Rig, kills: int = 20, lease: float = 2.0, visibility: int = 5,
                 jobs_per_round: int = 6, seconds: float = 0.8) -> Figure:
    """Test 4: SIGKILL a whole worker while it runs jobs, *kills* times; a survivor goes on."""
    rig.fleet.settings.update(lock_lease=lease, visibility_timeout=visibility)
    rig.fleet.add(2)
    victim = rig.fleet.add(2)
    ids: list[str] = []
    killed: list[tuple[str, float]] = []
    for round_ in range(kills):
        # Resources of this round only: a killed holder keeps its locks until its lease
        # runs out, and the next rounds must not wait for that.
        for i in range(jobs_per_round):
            options: dict[str, Any] = ({"user": f"u{round_}.{i % 3}"} if i % 2
                                       else {"models": [f"m{round_}.{i % 4}"]})
            ids.append(work.apply_async((seconds, f"w{round_}.{i}", 0.05), **options).id)
        pids = set(rig.fleet.children(victim))
        jobs = wait_until(lambda p=pids: _open_runs_on(rig, p), lease + 30.0,
                          f"round {round_}: a job running on the victim")
        at = rig.fleet.kill(victim)
        killed += [(job, at) for job in jobs]
        victim = rig.fleet.add(2)  # started again, as systemd or `pipeline up` would
    rig.wait_finished(ids, timeout=visibility + RESTORE_EVERY + 60.0)
    by_job = rig.ledger.by_job()
    kill_times = sorted({at for _, at in killed})
    # A job given back may be taken by the next worker to die before it started there:
    # its wait is counted from the last kill before it ran again.
    rescued = []
    for job, at in killed:
        starts = [r.start for r in by_job[job] if r.start > at]
        if starts:
            rerun = min(starts)
            rescued.append(rerun - max(k for k in kill_times if k < rerun))
    bound = visibility + RESTORE_EVERY + 2.0
    figure = Figure(4, "whole worker killed",
                    f"SIGKILL of a whole worker (main process and pool) while it runs jobs; "
                    f"visibility timeout {visibility} s", times=kills, jobs=len(ids),
                    locks_leaked=rig.settle_locks(lease + 3.0),
                    violations=sum(1 for r in rescued if r > bound),
                    recovery_s=round(max(rescued), 2) if rescued else None,
                    notes={"killed_jobs": len(killed), "rerun_after_s_max":
                           round(max(rescued), 2) if rescued else None,
                           "rerun_bound_s": bound, "lease_s": lease})
    return figure.count(rig.verdict(ids))


class _Publisher:
    """Publishes jobs steadily from a thread, retrying while the broker is down."""

    def __init__(self, every: float, seconds: float) -> None:
        self.every, self.seconds = every, seconds
        self.ids: list[str] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.every):
            try:
                self.ids.append(work.apply_async((self.seconds, f"p{n}"), ignore_result=True).id)
                n += 1
            except Exception:  # the broker is down: the caller got an error, nothing was queued
                self.failures += 1

    def __enter__(self) -> _Publisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def redis_restarts(rig: Rig, restarts: int = 20, down: float = 0.5,
                   seconds: float = 0.3) -> Figure:
    """Test 8: restart Redis *restarts* times while jobs run and are published."""
    for _ in range(2):
        rig.fleet.add(2)
    resumed: list[float] = []
    with _Publisher(every=0.05, seconds=seconds) as publisher:
        for _ in range(restarts):
            wait_until(lambda: _open_runs_on(rig, {p for w in rig.fleet.workers
                                                   for p in rig.fleet.children(w)}),
                       30.0, "a job running before the restart")
            back = rig.server.restart(down)
            probe = None
            while probe is None:  # published once the broker takes it again
                with contextlib.suppress(Exception):
                    probe = work.apply_async((0.0, "probe"), priority="critical",
                                             ignore_result=True).id
            wait_until(lambda p=probe: p in {r.job_id for r in rig.ledger.runs()}, 60.0,
                       "a job published after the restart to start")
            resumed.append(time.time() - back)
            publisher.ids.append(probe)
    ids = list(publisher.ids)
    rig.wait_finished(ids, timeout=120.0)
    figure = Figure(8, "Redis restarted",
                    f"Redis (append-only file) shut down and started again, down {down:g} s, "
                    f"while jobs run and are published", times=restarts, jobs=len(ids),
                    locks_leaked=rig.settle_locks(35.0),
                    violations=sum(1 for r in resumed if r > 30.0),
                    recovery_s=round(max(resumed), 2),
                    notes={"resumed_after_s": [round(r, 2) for r in resumed],
                           "publishes_refused_while_down": publisher.failures})
    return figure.count(rig.verdict(ids))


def long_countdown(rig: Rig, jobs: int = 3, visibility: int = 3,
                   countdown: float = 8.0) -> Figure:
    """Test 9: jobs whose countdown outlasts the visibility timeout run once, not before it."""
    rig.fleet.settings.update(visibility_timeout=visibility)
    for _ in range(2):
        rig.fleet.add(1)
    published = time.time()
    ids = [work.apply_async((0.0, f"c{i}"), countdown=countdown).id for i in range(jobs)]
    rig.wait_finished(ids, timeout=countdown + 30.0)
    time.sleep(visibility + RESTORE_EVERY)  # a second copy would show up by now
    runs = rig.ledger.by_job()
    early = sum(1 for job in ids for r in runs[job] if r.start < published + countdown - 0.5)
    figure = Figure(9, "countdown past the visibility timeout",
                    f"jobs with a {countdown:g} s countdown, visibility timeout {visibility} s",
                    times=jobs, jobs=jobs, locks_leaked=rig.settle_locks(5.0), violations=early,
                    notes={"started_early": early,
                           "runs": sum(len(runs[job]) for job in ids)})
    return figure.count(rig.verdict(ids))
