"""Fault scenario of a Sentinel failover: the primary SIGKILLed while jobs with locks run.

18. Workers, publishers and the result backend reach Redis through three
    Sentinels (``sentinel://...`` with the group's name). The primary is
    SIGKILLed while jobs on exclusive models run; the Sentinels promote the
    replica. Every job ends SUCCESS, none is lost or runs twice, no two jobs
    ever hold one model at once, and a job published after the kill starts
    within the recovery time measured.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from celery.result import AsyncResult

from tests.faults.fleet import Fleet
from tests.faults.ledger import Ledger, Run
from tests.faults.probes import work
from tests.faults.rig import Figure, Rig, wait_until
from tests.faults.sentinelgroup import MASTER_NAME, SentinelGroup
from tests.helpers.apps import point_app_at

_SETTINGS = ("broker_url", "result_backend", "broker_transport", "broker_transport_options",
             "result_backend_transport_options", "pipeline_redis_master_name",
             "pipeline_store_enabled", "pipeline_redis_wait_replicas")


@contextlib.contextmanager
def sentinel_rig(directory: Path, wait_replicas: int = 0) -> Iterator[tuple[Rig, SentinelGroup]]:
    """A :class:`Rig` whose app and workers reach Redis through a fresh Sentinel group."""
    import tests.faults.probes  # noqa: F401 -- registers the probes on the app
    from tasks.app import app

    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "runs.jsonl"
    saved = {key: app.conf.get(key) for key in _SETTINGS}
    with SentinelGroup(directory / "sentinel") as group:
        named = {"master_name": MASTER_NAME}
        app.conf.update(
            broker_transport="sentinel-pipeline",
            broker_transport_options={**(app.conf.broker_transport_options or {}), **named},
            result_backend_transport_options={
                **(app.conf.result_backend_transport_options or {}), **named},
            pipeline_redis_master_name=MASTER_NAME, pipeline_store_enabled=False,
            pipeline_redis_wait_replicas=wait_replicas)
        point_app_at(app, group.url, group.url)
        settings = {"redis_master_name": MASTER_NAME, "redis_wait_replicas": wait_replicas}
        try:
            with Fleet(group.url, directory, log, settings, 2) as fleet:
                yield Rig(directory, group, fleet, Ledger(log), app), group  # type: ignore[arg-type]
        finally:
            for key, value in saved.items():
                if value is None:
                    app.conf.changes.pop(key, None)
                else:
                    app.conf[key] = value
            point_app_at(app, saved["broker_url"], saved["result_backend"])


def _overlaps(runs: list[Run], model_of: dict[str, str], now: float) -> int:
    """Pairs of runs of different jobs on one exclusive model that ran at the same time."""
    by_model: dict[str, list[Run]] = {}
    for run in runs:
        if run.tag in model_of:
            by_model.setdefault(model_of[run.tag], []).append(run)
    found = 0
    for runs_of in by_model.values():
        for i, first in enumerate(runs_of):
            for second in runs_of[i + 1:]:
                found += first.job_id != second.job_id and first.overlaps(second, now)
    return found


def _publish_until_accepted(tag: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return str(work.apply_async((0.0, tag), priority="critical").id)
        except Exception:  # refused while no primary answers: nothing was queued
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def primary_failover(rig: Rig, group: SentinelGroup, jobs: int = 16, seconds: float = 1.5,
                     models: int = 4, failovers: int = 1) -> Figure:
    """Test 18: SIGKILL the primary while jobs with locks run; the replica takes over."""
    for _ in range(2):
        rig.fleet.add(2)
    ids: list[str] = []
    model_of: dict[str, str] = {}
    recoveries: list[float] = []
    promoted: list[float] = []
    for round_ in range(failovers):
        batch = []
        for i in range(jobs):
            tag = f"f{round_}.{i}"
            model_of[tag] = f"m{round_}.{i % models}"
            batch.append(work.apply_async((seconds, tag), models=[model_of[tag]]).id)
        ids += batch
        wait_until(lambda b=set(batch): len(b & {r.job_id for r in rig.ledger.runs()}) >= 2,
                   60.0, f"round {round_}: jobs running")
        old_port = group.primary_port()
        killed_at = group.kill_primary()
        promoted.append(group.wait_failover(old_port) - killed_at)
        probe = _publish_until_accepted(f"probe{round_}")
        ids.append(probe)
        wait_until(lambda p=probe: p in {r.job_id for r in rig.ledger.runs()}, 120.0,
                   f"round {round_}: a job published after the failover to start")
        start = min(r.start for r in rig.ledger.runs() if r.job_id == probe)
        recoveries.append(start - killed_at)
        rig.wait_finished([*batch, probe], timeout=jobs * seconds + 120.0)
        if round_ + 1 < failovers:  # the dead primary comes back as a replica
            group.restart_killed()
    wait = int(rig.app.conf.get("pipeline_redis_wait_replicas") or 0)
    outcomes = {job: AsyncResult(job, app=rig.app).state for job in ids}
    not_success = sorted(job for job, state in outcomes.items() if state != "SUCCESS")
    overlaps = _overlaps(rig.ledger.runs(), model_of, time.time())
    notes: dict[str, Any] = {"promoted_after_s": [round(p, 2) for p in promoted],
                             "first_start_after_kill_s": [round(r, 2) for r in recoveries],
                             "not_success": not_success[:5], "overlaps": overlaps,
                             "wait_replicas": wait}
    figure = Figure(18, "Sentinel failover",
                    "the primary of a Sentinel group (1 replica, 3 Sentinels) SIGKILLed while "
                    f"jobs on exclusive models run; WAIT for {wait} replica(s) after a grant "
                    "and a publish", times=failovers, jobs=len(ids),
                    locks_leaked=rig.settle_locks(40.0),
                    violations=len(not_success) + overlaps,
                    recovery_s=round(max(recoveries), 2), notes=notes)
    return figure.count(rig.verdict(ids))
