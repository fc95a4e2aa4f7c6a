"""Fault scenario of maintenance while every pool process is busy.

17. Beat runs (a real ``celery beat``) while both pool processes of the only
    worker run long jobs. Every sweep must run on schedule anyway: a hold
    left by a dead holder is dropped within its lease plus two sweep periods;
    the job queue never shows a sweep (``status`` and the metrics count jobs
    only, ``flush`` never sees one); sweeps never pile up in their own queue.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from pipeline.actions.maintenance import SWEEP_EVERY
from pipeline.actions.sweeper import MAINTENANCE_QUEUE
from pipeline.keys import Keys
from pipeline.locks.resources import EXCLUSIVE, Claim
from pipeline.locks.ticket import Ticket
from pipeline.observe.inspection.live import queue_depth
from pipeline.runtime.services import _SERVICES, services_for
from tests.faults.probes import work
from tests.faults.rig import Figure, Rig, wait_until
from tests.helpers.workers import ROOT


def _start_beat(rig: Rig) -> subprocess.Popen[bytes]:
    log = open(rig.directory / "beat.log", "wb")  # noqa: SIM115 -- the process keeps it
    env = {**os.environ, "PIPELINE_BROKER_URL": rig.server.url,
           "PIPELINE_RESULT_BACKEND": rig.server.url, "PIPELINE_STORE_ENABLED": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks.app", "beat", "--loglevel", "INFO",
         "--schedule", str(rig.directory / "celerybeat-schedule")],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)


def busy_pool(rig: Rig, seconds: float = 12.0, lease: float = 2.0) -> Figure:
    """Test 17: sweeps on schedule while every pool process runs a *seconds*-long job."""
    rig.fleet.add(2)
    ids = [work.apply_async((seconds, f"long{i}"), models=[f"m{i}"]).id for i in range(2)]
    wait_until(lambda: {r.job_id for r in rig.ledger.runs()} >= set(ids), 60.0,
               "both pool processes busy")
    # A hold of a holder that died: its lease (short) runs out, only a sweep drops it.
    rig.app.conf.pipeline_lock_lease = lease
    _SERVICES.clear()
    try:
        services_for(rig.app).locks.acquire(
            Ticket("dead", "dead", (Claim("model:dead", EXCLUSIVE, 1),), 6), host="gone", pid=1)
    finally:
        rig.app.conf.changes.pop("pipeline_lock_lease", None)
        _SERVICES.clear()
    locks = services_for(rig.app).lock_reads
    planted = time.time()
    beat = _start_beat(rig)
    client = rig.client()
    shown_as_jobs, longest_backlog, dropped_after = 0, 0, None
    maintenance_list = Keys("pipeline").broker_queue_prefix() + MAINTENANCE_QUEUE
    try:
        end = planted + seconds - 1.0
        while time.time() < end:
            shown_as_jobs = max(shown_as_jobs, sum(queue_depth(services_for(rig.app)).values()))
            longest_backlog = max(longest_backlog, int(client.llen(maintenance_list)))
            if dropped_after is None and locks.explain("dead").status == "unknown":
                dropped_after = time.time() - planted
            time.sleep(0.25)
    finally:
        beat.terminate()
        beat.wait(15)
        client.close()
    rig.wait_finished(ids, timeout=seconds + 30.0)
    bound = lease + 2 * SWEEP_EVERY + 1.0
    late = dropped_after is None or dropped_after > bound
    figure = Figure(17, "maintenance while every pool process is busy",
                    f"beat running, both pool processes on {seconds:g} s jobs", times=1,
                    jobs=len(ids), locks_leaked=rig.settle_locks(lease + 5.0),
                    violations=int(late) + int(shown_as_jobs > 0) + int(longest_backlog > 1),
                    recovery_s=None if dropped_after is None else round(dropped_after, 2),
                    notes={"dead_hold_dropped_after_s": dropped_after, "bound_s": bound,
                           "sweeps_shown_as_queued_jobs": shown_as_jobs,
                           "longest_maintenance_backlog": longest_backlog})
    return figure.count(rig.verdict(ids))
