"""Fault scenarios of the locks: exclusion and capacity under load, killed pool processes.

1. jobs on one exclusive model: no two overlap, fencing tokens grow in start order;
2. (with 11) random jobs over users, models, projects and the global cap: no
   capacity exceeded, each job run once, while a sweep runs every second and
   never frees a live lease;
3. a pool process killed with SIGKILL while it runs a job: its locks free within
   the lease plus a second, the job runs again, never two copies at once.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import defaultdict
from typing import Any

from pipeline.runtime.services import services_for
from tests.faults.ledger import Run, overlapping, peak
from tests.faults.probes import work
from tests.faults.rig import Figure, Rig, wait_until


def exclusive_model(rig: Rig, jobs: int = 500, workers: int = 2,
                    concurrency: int = 2) -> Figure:
    """Test 1: *jobs* jobs on one exclusive model, ``workers x concurrency`` processes."""
    for _ in range(workers):
        rig.fleet.add(concurrency)
    began = time.time()
    ids = [work.apply_async((0.0, f"x{i}"), models=["m"]).id for i in range(jobs)]
    rig.wait_finished(ids, timeout=60 + jobs * 0.2)
    took = time.time() - began
    runs = sorted((r for r in rig.ledger.runs() if r.finished), key=lambda r: r.start)
    overlaps = overlapping(runs, time.time())
    tokens = [r.tokens.get("model:m", 0) for r in runs]
    disorder = sum(1 for a, b in itertools.pairwise(tokens) if b <= a)
    figure = Figure(1, "one exclusive model",
                    f"{jobs} jobs on one exclusive model, {workers * concurrency} processes",
                    times=0, jobs=jobs, locks_leaked=rig.settle_locks(5.0),
                    violations=len(overlaps) + disorder,
                    notes={"overlapping_pairs": len(overlaps), "tokens_out_of_order": disorder,
                           "processes_used": len({(r.host, r.pid) for r in runs}),
                           "jobs_per_s": round(jobs / took, 1)})
    return figure.count(rig.verdict(ids))


USERS = ("ann", "bob", "cy")
PROJECTS = ("nlp", "cv", "rl")
MODELS = ("bert", "gpt", "t5", "vit")
GLOBAL_CAP = 3


def _demand(rng: random.Random) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if rng.random() < 0.5:
        options["user"] = rng.choice(USERS)
    if rng.random() < 0.5:
        options["project"] = rng.choice(PROJECTS)
    models = rng.sample(MODELS, rng.randint(0, 2))
    if models:
        options["models"] = models
        options["shared"] = rng.random() < 0.5
    return options


def _capacity_breaks(runs: list[Run], demands: dict[str, dict[str, Any]], now: float) -> dict[
        str, int]:
    """Capacities exceeded, per kind, judged from the recorded intervals."""
    breaks: dict[str, int] = defaultdict(int)
    if peak(runs, now) > GLOBAL_CAP:
        breaks["global"] += 1
    for user in USERS:
        if peak(runs, now, lambda r, u=user: demands[r.job_id].get("user") == u) > 1:
            breaks["user"] += 1
    for project in PROJECTS:
        if peak(runs, now, lambda r, p=project: demands[r.job_id].get("project") == p) > 2:
            breaks["project"] += 1
    for model in MODELS:
        users = [r for r in runs if model in (demands[r.job_id].get("models") or ())]
        writers = [r for r in users if not demands[r.job_id].get("shared")]
        for writer in writers:
            if any(o is not writer and o.overlaps(writer, now) for o in users):
                breaks["model"] += 1
    return dict(breaks)


def mixed_capacity(rig: Rig, jobs: int = 2000, workers: int = 2, concurrency: int = 2,
                   sweep_every: float = 1.0, seed: int = 7) -> Figure:
    """Tests 2 and 11: random demands, capacities from intervals, a sweep every second."""
    rig.fleet.settings["concurrency_global"] = GLOBAL_CAP
    for _ in range(workers):
        rig.fleet.add(concurrency)
    rng = random.Random(seed)
    demands: dict[str, dict[str, Any]] = {}
    stop, sweeps = threading.Event(), [0]

    def sweeper() -> None:
        locks = services_for(rig.app).locks
        while not stop.wait(sweep_every):
            locks.sweep()
            sweeps[0] += 1

    thread = threading.Thread(target=sweeper, daemon=True)
    thread.start()
    try:
        for i in range(jobs):
            options = _demand(rng)
            job = work.apply_async((rng.uniform(0.0, 0.03), f"r{i}"), **options)
            demands[job.id] = options
        rig.wait_finished(list(demands), timeout=60 + jobs * 0.2)
    finally:
        stop.set()
        thread.join(5)
    runs = [r for r in rig.ledger.runs() if r.finished]
    breaks = _capacity_breaks(runs, demands, time.time())
    client = rig.client()
    lost_leases = sum(1 for _, f in client.xrange("{pipeline}:events") if f[b"e"] == b"lock_lost")
    client.close()
    figure = Figure(2, "random demands, sweep every second",
                    f"{jobs} random jobs over users, models, projects and a global cap of "
                    f"{GLOBAL_CAP}; a sweep every {sweep_every:g} s", times=sweeps[0],
                    jobs=jobs, locks_leaked=rig.settle_locks(5.0),
                    violations=sum(breaks.values()) + lost_leases,
                    notes={"capacity_exceeded": breaks, "live_leases_freed": lost_leases,
                           "sweeps": sweeps[0], "peak_running": peak(runs, time.time())})
    return figure.count(rig.verdict(list(demands)))


def _hold_left(rig: Rig, job_id: str, pid: int) -> bool:
    """Whether the killed process no longer holds *job_id*'s locks (a lease that ran out is free:
    the next script that looks at the resource drops it)."""
    explained = services_for(rig.app).lock_reads.explain(job_id)
    return (explained.status != "running" or explained.pid != str(pid)
            or (explained.expires_at or 0) < time.time())


def kill_children(rig: Rig, kills: int = 50, lease: float = 2.0) -> Figure:
    """Test 3: SIGKILL the pool process of a running job, *kills* times."""
    rig.fleet.settings["lock_lease"] = lease
    rig.fleet.add(2)
    ids: list[str] = []
    freed: list[float] = []
    for i in range(kills):
        job = work.apply_async((30.0, f"k{i}", 0.1), models=[f"m{i % 3}"], user=f"u{i % 2}")
        ids.append(job.id)
        run = wait_until(lambda j=job.id: next((r for r in rig.ledger.by_job().get(j, [])
                                                if not r.finished), None),
                         30.0, f"job k{i} to start")
        killed_at = rig.fleet.kill_process(run.pid)
        wait_until(lambda j=job.id, p=run.pid: _hold_left(rig, j, p), lease + 5.0,
                   f"the locks of k{i} to be freed")
        freed.append(time.time() - killed_at)
    rig.wait_finished(ids, timeout=30.0)
    reruns = [min(r.start for r in runs if r.finished) - min(r.start for r in runs)
              for runs in (rig.ledger.by_job()[j] for j in ids)]
    late = sum(1 for f in freed if f > lease + 1.0)
    figure = Figure(3, "pool process killed", "SIGKILL of the pool process running a job",
                    times=kills, jobs=kills, locks_leaked=rig.settle_locks(lease + 2.0),
                    violations=late, recovery_s=round(max(freed), 2),
                    notes={"locks_freed_after_s_max": round(max(freed), 2),
                           "rerun_after_s_max": round(max(reruns), 2),
                           "freed_later_than_lease_plus_1s": late, "lease_s": lease,
                           "freed_after_s": [round(f, 2) for f in freed]})
    return figure.count(rig.verdict(ids))
