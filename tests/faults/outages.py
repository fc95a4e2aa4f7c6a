"""Fault scenarios of a Redis that dies under the workers (SIGKILL, not a polite shutdown).

15. Redis SIGKILLed while jobs end (their bodies return while it is down), kept
    down a while, started again from its append-only file: no job reads
    FAILURE because Redis was away; each job's result (SUCCESS) and its history
    (one ``completed`` event in the stream the recorder writes to the store)
    agree; nothing lost, nothing run twice, no lock left.

With ``appendfsync always`` Redis loses nothing it acknowledged. With
``everysec`` (Redis's default) a SIGKILL may lose the last second of writes:
the scenario counts what came back from a rerun (a job whose fetch, hold or
acknowledgement was lost runs again, once) in ``notes``.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any

from celery.result import AsyncResult

from pipeline.keys import Keys
from pipeline.messages.events import COMPLETED
from tests.faults.probes import work
from tests.faults.rig import Figure, Rig, wait_until


def _outcomes(rig: Rig, ids: list[str]) -> dict[str, str]:
    """Each job's state in the result backend."""
    return {job: AsyncResult(job, app=rig.app).state for job in ids}


def _completed_events(rig: Rig) -> Counter[str]:
    """How many ``completed`` events each job has in the event stream (its history)."""
    client = rig.client()
    try:
        stream = Keys(rig.app.conf.get("pipeline_redis_prefix") or "pipeline").events
        counts: Counter[str] = Counter()
        for _, fields in client.xrange(stream):
            if fields.get(b"e") == COMPLETED.encode():
                counts[fields[b"j"].decode()] += 1
        return counts
    finally:
        client.close()


def redis_crashes(rig: Rig, crashes: int = 2, down: float = 5.0, fsync: str = "always",
                  jobs_per_round: int = 4, seconds: float = 1.0,
                  outage_limit: float = 60.0) -> Figure:
    """Test 15: SIGKILL Redis as running jobs end, keep it down *down* s, start it again."""
    rig.server.appendfsync = fsync
    client = rig.client()
    client.config_set("appendfsync", fsync)
    client.close()
    rig.fleet.settings.update(redis_outage_limit=outage_limit)
    for _ in range(2):
        rig.fleet.add(2)
    ids: list[str] = []
    recovered: list[float] = []
    for round_ in range(crashes):
        batch = [work.apply_async((seconds, f"r{round_}.{i}"), models=[f"m{round_}.{i}"]).id
                 for i in range(jobs_per_round)]
        ids += batch
        # Every job of the round running, then the kill just before their bodies end.
        wait_until(lambda b=batch: {r.job_id for r in rig.ledger.runs()} >= set(b), 60.0,
                   f"round {round_}: its jobs to start")
        began = max(r.start for r in rig.ledger.runs() if r.job_id in batch)
        time.sleep(max(0.0, began + seconds - 0.2 - time.time()))
        rig.server.kill()
        time.sleep(down)
        rig.server.start()
        back = time.time()
        wait_until(lambda b=batch: all(s in ("SUCCESS", "FAILURE")
                                       for s in _outcomes(rig, b).values()),
                   outage_limit + 60.0, f"round {round_}: every job's outcome stored")
        recovered.append(time.time() - back)
    rig.wait_finished(ids, timeout=outage_limit + 60.0)
    outcomes = _outcomes(rig, ids)
    failed = sorted(job for job, state in outcomes.items() if state != "SUCCESS")
    ended_during = sum(1 for r in rig.ledger.runs() if r.job_id in set(ids) and r.finished)
    # The history agrees once the release of each job went through.
    with contextlib.suppress(AssertionError):
        wait_until(lambda: set(ids) <= set(_completed_events(rig)), 30.0,
                   "a completed event for every job")
    completed = _completed_events(rig)
    without_history = sorted(job for job in ids if completed[job] == 0)
    notes: dict[str, Any] = {"appendfsync": fsync, "down_s": down,
                             "not_success": failed[:5], "without_completed_event":
                             without_history[:5], "runs_finished": ended_during,
                             "recovered_after_s": [round(r, 2) for r in recovered]}
    figure = Figure(15, "Redis SIGKILLed",
                    f"Redis SIGKILLed as jobs end, down {down:g} s, restarted from its "
                    f"append-only file (appendfsync {fsync})", times=crashes, jobs=len(ids),
                    locks_leaked=rig.settle_locks(35.0),
                    violations=len(failed) + len(without_history),
                    recovery_s=round(max(recovered), 2), notes=notes)
    return figure.count(rig.verdict(ids))
