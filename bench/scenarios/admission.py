"""Admission: the load gate's cost on throughput, and fair share's cost on the hand-off.

``gate``: drain rate (jobs/s of a prefork ``-c 2`` worker emptying a pre-filled
queue, as in ``throughput``) of the pipeline with its load gate and load
records on against the same worker with both off, in the same run, and plain
Celery for reference; store off on every side. The gate's limits are set to
100 % (``pipeline_load_max_cpu = 1.0``, ``pipeline_load_max_memory = 100``) so
it reads the load, decides and publishes the worker's record every
``pipeline_agent_heartbeat`` (2 s) without ever pausing: a drain saturates the
machine on purpose, and a pause would measure the gate doing its job. Goal:
on / off >= 0.98.

``fair_handoff``: hand-off latency (one job's end to the next job's start, as in
``handoff``) while N jobs are parked on one model, all at one priority, spread
over 100 projects versus all in one project. The jobs are parked straight
through the lock engine behind a fake holder (as in ``parked_scale``), the hold
is released and a fresh prefork ``-c 2`` worker runs them all, one at a time:
with 100 projects every hand-off goes to the next project in turn. Goal:
100 projects / one project <= 1.2 (p50).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from bench import lockbench
from bench.errors import BenchError
from bench.harness import Context, DrainSample, measure_drain, publish
from bench.lockbench import STORE_OFF
from bench.parker import Parker
from bench.scenarios import Scenario
from bench.scenarios.parked_scale import MODEL
from bench.stats import compare, ratio
from bench.targets import Target
from pipeline.locks.resources import Demand, claims
from pipeline.locks.ticket import Blocked, Ticket
from pipeline.messages import envelope
from pipeline.messages.header import NAME, JobHeader
from pipeline.priority import Priority
from pipeline.runtime.services import services_for

GATE_ON = {**STORE_OFF, "PIPELINE_LOAD_GATE": "true", "PIPELINE_LOAD_MAX_CPU": "1.0",
           "PIPELINE_LOAD_MAX_MEMORY": "100", "PIPELINE_AGENT_HEARTBEAT": "2"}
GATE_OFF = {**STORE_OFF, "PIPELINE_LOAD_GATE": "false", "PIPELINE_AGENT_HEARTBEAT": "0"}

PROJECTS = 100
GOAL_GATE = 0.98
GOAL_FAIR = 1.2


def gate(ctx: Context) -> dict[str, Any]:
    """Drain rate with the gate and load records on, off, and plain Celery."""
    jobs = ctx.size(20_000, 1_500)
    sides: dict[str, Target] = {
        "plain": lockbench.plain_target(),
        "gate_off": lockbench.pipeline_target("gate_off", GATE_OFF),
        "gate_on": lockbench.pipeline_target("gate_on", GATE_ON),
    }
    lockbench.set_publisher_store(sides["gate_on"].app, False)
    try:
        ctx.flush()
        workers = {name: ctx.worker(target) for name, target in sides.items()}
        ctx.start_workers(list(workers.values()))

        def sample(name: str, _round: int) -> DrainSample:
            return measure_drain(workers[name], lambda: publish(sides[name], jobs))

        samples = ctx.alternate(list(sides), sample)
    finally:
        ctx.stop_workers()
        lockbench.set_publisher_store(sides["gate_on"].app, True)
    rates = {name: [s.rate for s in values] for name, values in samples.items()}
    out = compare(rates, "jobs/s", base="gate_off", subject="gate_on", digits=1)
    out["plain"] = compare(rates, "jobs/s", base="plain", subject="gate_off", digits=1)["plain"]
    out["gate_off_vs_plain"] = ratio(out["gate_off"]["median"], out["plain"]["median"])
    out["gate_on_vs_plain"] = ratio(out["gate_on"]["median"], out["plain"]["median"])
    out["jobs"], out["rounds"], out["pool"] = jobs, ctx.rounds, "prefork"
    out["ratio_goal"] = lockbench.goal(out["ratio"], GOAL_GATE, at_least=True)
    return out


def park_spread(parker: Parker, target: Target, count: int, projects: int) -> list[str]:
    """Park *count* timed jobs on the model, job i in project ``p<i % projects>``."""
    app = target.app
    settings = services_for(app).settings
    ids = []
    for n in range(count):
        job, now, project = str(uuid.uuid4()), time.time(), f"p{n % projects}"
        demand = Demand(project=project, models=(MODEL,))
        message = app.amqp.as_task_v2(job, "benchlocks.timed", (), {}, root_id=job)
        header = JobHeader.of(demand, submitted_at=now).encode()
        stored = envelope.envelope(envelope.without_task_defaults(app, message.headers),
                                  message.body, int(Priority.NORMAL), parker.queue,
                                  {NAME: header}, complete=False)
        ticket = Ticket(job, job, claims(demand, settings), int(Priority.NORMAL),
                        submitted_ms=int(now * 1000))
        result = parker.locks.acquire(ticket, host="bench", pid=os.getpid(),
                                      park_message=stored, queue_key=parker.queue_key)
        if not isinstance(result, Blocked) or not result.position:
            raise BenchError(f"job {n} was not parked: {result}")
        ids.append(job)
        if n % 1000 == 0:
            parker.renew()
    return ids


def fair_sample(ctx: Context, target: Target, parked: int, projects: int) -> list[float]:
    """Hand-off gaps (ms) of *parked* jobs spread over *projects*, run one at a time."""
    ctx.flush()
    worker = ctx.worker(target)
    try:
        worker.start()
        parker = Parker(target, MODEL)
        parker.hold()
        ids = park_spread(parker, target, parked, projects)
        parker.release()
        spans = lockbench.collect_spans(ctx.client, target, ids, worker=worker)
    finally:
        ctx.stop_workers()
    ctx.flush()
    if lockbench.overlaps(spans):
        raise BenchError("two jobs on the model overlapped")
    return lockbench.handoff_gaps(spans)


def fair_handoff(ctx: Context) -> dict[str, Any]:
    """Alternate N parked over 100 projects with N parked in one."""
    parked = ctx.size(10_000, 500)
    target = lockbench.pipeline_target()
    sizes = {f"{PROJECTS}_projects": PROJECTS, "one_project": 1}
    lockbench.set_publisher_store(target.app, False)
    try:
        samples = ctx.alternate(list(sizes), lambda name, _r: fair_sample(
            ctx, target, parked, sizes[name]))
    finally:
        lockbench.set_publisher_store(target.app, True)
    out: dict[str, Any] = {"parked": parked, "rounds": ctx.rounds, "unit": "ms",
                           "pool": "prefork", "store": "off"}
    for name, rounds in samples.items():
        out[name] = {**lockbench.distribution([g for r in rounds for g in r]),
                     "round_p50s": [lockbench.distribution(r)["p50"] for r in rounds]}
    many, one = out[f"{PROJECTS}_projects"], out["one_project"]
    out["ratio_p50"] = ratio(many["p50"], one["p50"])
    out["ratio_p99"] = ratio(many["p99"], one["p99"])
    out["ratio_goal"] = lockbench.goal(out["ratio_p50"], GOAL_FAIR, at_least=False)
    return out


def run(ctx: Context) -> dict[str, Any]:
    """Both parts."""
    return {"gate": gate(ctx), "fair_handoff": fair_handoff(ctx)}


SCENARIO = Scenario("admission", "throughput with the load gate on vs off; hand-off with N "
                    "parked over 100 projects vs one", run, order=150)
