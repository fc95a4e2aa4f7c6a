"""Fault scenarios of single jobs: a poison job, unusual endings, a stopped holder, workflows.

5. a job that kills its own process: dead-lettered after its max deliveries with
   the reason "worker lost", while the queue keeps flowing;
6. retry, Ignore, Reject, an exception, soft and hard time limits: no lock key left;
7. a holder stopped (SIGSTOP) past its lease, then resumed: the loss is recorded,
   it cannot release the new holder's lock, its write fenced by its token is refused;
10. a workflow whose pool process is killed as each step starts: it resumes and
    ends, its locks freed.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from pipeline import workflow
from pipeline.actions import deadletters
from pipeline.runtime.services import services_for
from tests.faults.probes import end, fenced, poison, step, work
from tests.faults.rig import Figure, Rig, wait_until
from tests.helpers import redisdb


def poison_job(rig: Rig, max_deliveries: int = 3, others: int = 20) -> Figure:
    """Test 5: a job that SIGKILLs its own process, among *others* ordinary jobs."""
    rig.fleet.settings["max_deliveries"] = max_deliveries
    rig.fleet.add(2)
    bad = poison.apply_async(("poison",))
    ids = [work.apply_async((0.05, f"o{i}")).id for i in range(others)]
    services = services_for(rig.app)
    dead = wait_until(lambda: [d for d in deadletters.list_dead(services) if d.job_id == bad.id],
                      60.0 + 10 * max_deliveries, "the poison job to be dead-lettered")[0]
    rig.wait_finished(ids, timeout=60.0)
    starts = len(rig.ledger.by_job().get(bad.id, []))
    state = bad.state
    breaks = {"deliveries": starts != max_deliveries, "reason": "worker lost" not in dead.error,
              "state": state != "FAILURE"}
    figure = Figure(5, "poison job", "a job that SIGKILLs its own process on every delivery",
                    times=starts, jobs=others + 1, locks_leaked=rig.settle_locks(5.0),
                    violations=sum(breaks.values()),
                    notes={"deliveries": starts, "max_deliveries": max_deliveries,
                           "dead_letter_error": dead.error[:120], "state": state,
                           "broken": [k for k, v in breaks.items() if v]})
    return figure.count(rig.verdict(ids))


ENDINGS = ("retry", "ignore", "reject", "raise", "soft", "hard")


def unusual_endings(rig: Rig, rounds: int = 1) -> Figure:
    """Test 6: each ending *rounds* times, on a model and a user; no lock key may be left."""
    rig.fleet.add(2)
    results = []
    for n in range(rounds):
        for how in ENDINGS:
            options: dict[str, Any] = {"models": [f"m{n % 2}"], "user": "u"}
            if how in ("soft", "hard"):
                options.update(soft_time_limit=0.3, time_limit=1.0)
            kind = {"soft": "sleep", "hard": "stubborn"}.get(how, how)
            results.append(end.apply_async((kind, f"{how}{n}"), **options))
    started = {r.id for r in results}
    wait_until(lambda: started <= set(rig.ledger.by_job()) and _settled(rig), 60.0 + 10 * rounds,
               "every unusual ending to be over (nothing queued, nothing taken)")
    leaked = rig.settle_locks(3.0)
    ran = rig.ledger.by_job()
    figure = Figure(6, "unusual endings",
                    "retry, Ignore, Reject, an exception, soft and hard time limits",
                    times=len(results), jobs=len(results), locks_leaked=leaked,
                    violations=sum(1 for r in results if r.id not in ran),
                    notes={"endings": list(ENDINGS), "rounds": rounds})
    return figure


def _settled(rig: Rig) -> bool:
    """Nothing queued, nothing taken: every message settled."""
    client = rig.client()
    try:
        return not redisdb.queued(client) and not client.hlen("{pipeline}:unacked")
    finally:
        client.close()


STORE = "faults:fenced-store"


def _end_record(rig: Rig, job_id: str) -> dict[str, Any] | None:
    return next((r for r in rig.ledger.records() if r["id"] == job_id and r["event"] == "end"),
                None)


def _events(rig: Rig, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    client = rig.client()
    try:
        return [(f[b"e"].decode(), json.loads(f[b"d"])) for _, f in client.xrange(
            "{pipeline}:events") if f[b"j"].decode() == job_id]
    finally:
        client.close()


def stopped_holder(rig: Rig, times: int = 1, lease: float = 2.0) -> Figure:
    """Test 7: SIGSTOP a job holding a model past its lease, start another, then SIGCONT."""
    rig.fleet.settings["lock_lease"] = lease
    for _ in range(2):
        rig.fleet.add(1)
    breaks: dict[str, int] = {}
    ids: list[str] = []
    stalled: list[float] = []
    for n in range(times):
        old = fenced.apply_async((lease * 2, 0.0, f"old{n}", STORE), models=["m"])
        run = wait_until(lambda o=old.id: next(iter(rig.ledger.by_job().get(o, [])), None),
                         30.0, "the old holder to start")
        os.kill(run.pid, signal.SIGSTOP)
        stopped = time.time()
        try:
            new = fenced.apply_async((0.1, lease * 2, f"new{n}", STORE), models=["m"])
            wait_until(lambda j=new.id: any(r["id"] == j and r["event"] == "start"
                                            for r in rig.ledger.records()),
                       lease + 20.0, "the new holder to start once the lease ran out")
            time.sleep(0.5)  # the new holder writes to the store first
        finally:
            os.kill(run.pid, signal.SIGCONT)
        stalled.append(time.time() - stopped)
        ids += [old.id, new.id]
        done = wait_until(lambda o=old.id: _end_record(rig, o), 30.0, "the old holder to end")
        holding = services_for(rig.app).lock_reads.explain(new.id)
        events = _events(rig, old.id)
        outcome = next((d for e, d in events if e == "completed"), {})
        for name, broken in {
                "lease_lost() was False": not done.get("lost"),
                "its fenced write went through": bool(done.get("wrote")),
                "it freed the new holder's lock": holding.status != "running",
                "no lock_lost event": not any(e == "lock_lost" for e, _ in events),
                "its outcome does not say so": not outcome.get("lock_lost")}.items():
            breaks[name] = breaks.get(name, 0) + int(broken)
        rig.wait_finished([new.id], timeout=30.0)
    figure = Figure(7, "holder stopped past its lease",
                    "SIGSTOP of a job holding a model, past its lease, then SIGCONT",
                    times=times, jobs=len(ids), locks_leaked=rig.settle_locks(lease + 2.0),
                    violations=sum(breaks.values()), recovery_s=round(max(stalled), 2),
                    notes={"broken": {k: v for k, v in breaks.items() if v}, "lease_s": lease})
    return figure.count(rig.verdict(ids))


def killed_workflows(rig: Rig, steps: int = 3) -> Figure:
    """Test 10: a workflow of *steps* steps; the pool process is killed as step k starts."""
    rig.fleet.add(2)
    ids: list[str] = []
    breaks = 0
    for k in range(1, steps + 1):
        signatures = [step.s(None, 0.5, f"k{k}.1")] + [step.s(0.5, f"k{k}.{i}")
                                                       for i in range(2, steps + 1)]
        result = workflow(*signatures, name=f"killed-at-{k}", user="u",
                          models=["m"]).apply_async()
        target = f"k{k}.{k}"
        run = wait_until(lambda t=target: next((r for r in rig.ledger.runs() if r.tag == t),
                                               None), 30.0, f"step {target} to start")
        rig.fleet.kill_process(run.pid)
        value = result.get(timeout=60.0)
        expected = ">".join(f"k{k}.{i}" for i in range(1, steps + 1))
        breaks += int(value != expected)
        ids += [r.job_id for r in rig.ledger.runs() if r.tag.startswith(f"k{k}.")]
    ids = sorted(set(ids))
    figure = Figure(10, "workflow killed at a step",
                    f"SIGKILL of the pool process as each step of a {steps}-step workflow "
                    "starts", times=steps, jobs=len(ids),
                    locks_leaked=rig.settle_locks(5.0), violations=breaks,
                    notes={"wrong_results": breaks})
    return figure.count(rig.verdict(ids))
