"""Fault scenario of a worker stopped past its stop timeout and started again under its name.

16. A worker is asked to stop (SIGTERM) while it runs a long job, is killed
    when the job outlasts the stop timeout (SIGKILL, as ``pipeline up`` and
    systemd do), and started again under the same node name. While it is
    down, ``show`` does not call the job running (its process is gone). The
    new worker gives back at once what its predecessor held: the job runs
    again within seconds, not after the lease and the visibility timeout; its
    history says "given back: its worker stopped" and its second start is
    attempt 2.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from pipeline.broker.predecessor import REASON
from pipeline.keys import Keys
from pipeline.messages.events import RELEASED, STARTED
from pipeline.observe.inspection import job_detail
from pipeline.runtime.services import services_for
from tests.faults.probes import work
from tests.faults.rig import Figure, Rig, wait_until

#: Seconds ``pipeline up`` waits for a stopping worker before it kills it.
STOP_TIMEOUT = 2.0


def _events(rig: Rig, job_id: str, kind: str) -> list[dict[str, Any]]:
    """The details of *job_id*'s events of *kind*, oldest first."""
    client = rig.client()
    try:
        stream = Keys(rig.app.conf.get("pipeline_redis_prefix") or "pipeline").events
        return [json.loads(f[b"d"]) for _, f in client.xrange(stream)
                if f.get(b"j") == job_id.encode() and f.get(b"e") == kind.encode()]
    finally:
        client.close()


def restarted_worker(rig: Rig, restarts: int = 1, seconds: float = 60.0, lease: float = 30.0,
                     visibility: int = 60) -> Figure:
    """Test 16: stop a worker past its timeout mid-job, start it again under its name."""
    rig.fleet.settings.update(lock_lease=lease, visibility_timeout=visibility)
    ids: list[str] = []
    waits: list[float] = []
    violations = 0
    notes: dict[str, Any] = {"shown_while_down": [], "attempts": [], "given_back_reason": []}
    for round_ in range(restarts):
        worker = rig.fleet.add(1, name="same")
        job = work.apply_async((seconds, f"s{round_}", 0.2), models=[f"m{round_}"]).id
        ids.append(job)
        wait_until(lambda j=job: j in {r.job_id for r in rig.ledger.runs()}, 60.0,
                   f"round {round_}: the job to start")
        assert worker.process is not None
        os.kill(worker.process.pid, signal.SIGTERM)  # warm shutdown: the job runs on
        time.sleep(STOP_TIMEOUT)
        killed_at = rig.fleet.kill(worker)  # past the stop timeout
        shown = job_detail(services_for(rig.app), job, history=0)
        notes["shown_while_down"].append(shown.where)
        violations += shown.where == "running"
        rig.fleet.add(1, name="same")
        wait_until(lambda j=job: sum(1 for r in rig.ledger.runs() if r.job_id == j) >= 2,
                   lease + visibility + 30.0, f"round {round_}: the job to run again")
        rerun = max(r.start for r in rig.ledger.runs() if r.job_id == job)
        waits.append(rerun - killed_at)
        rig.wait_finished([job], timeout=30.0)
        attempts = [e.get("attempt") for e in _events(rig, job, STARTED)]
        reasons = [e.get("reason") for e in _events(rig, job, RELEASED)]
        notes["attempts"].append(attempts)
        notes["given_back_reason"].append(reasons)
        violations += attempts[-1:] != [2] or REASON not in reasons
        rig.fleet.stop()
    bound = 10.0
    violations += sum(1 for w in waits if w > bound)
    figure = Figure(16, "worker stopped past its timeout, started again",
                    "a worker stopped past its stop timeout while it runs a job (SIGTERM, then "
                    "SIGKILL), started again under the same name", times=restarts,
                    jobs=len(ids), locks_leaked=rig.settle_locks(lease + 5.0),
                    violations=violations, recovery_s=round(max(waits), 2),
                    notes={**notes, "rerun_after_s": [round(w, 2) for w in waits],
                           "rerun_bound_s": bound, "lease_s": lease,
                           "visibility_timeout_s": visibility})
    return figure.count(rig.verdict(ids))
