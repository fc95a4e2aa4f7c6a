"""Hand-off latency with 10 versus 100,000 jobs parked on the model, and memory per parked job.

Each sample starts from a flushed database and a fresh prefork ``-c 2`` worker. The
driver takes the model under a fake holder, then parks the background jobs straight
through the lock engine (``RedisLockEngine.acquire`` with a message built by
``pipeline.messages.envelope.envelope`` for the real ``bench.pipeline.noop`` task, priority
low = 9), renewing its fake hold meanwhile. Then it publishes the measured jobs
(``benchlocks.timed``, normal priority, same model): they reach the worker, find the
model taken and park ahead of the low ones. Once all are parked the fake hold is
released and the hand-off latencies among the measured jobs are taken as in
``handoff`` (next start - previous end). The worker is stopped and the database
flushed once they have run (the background jobs would run next). The two sizes
alternate round by round.

Memory: ``INFO memory`` ``used_memory`` before and after parking the background
jobs, divided by their number; the event stream's share (each park appends a
``blocked`` event) is reported apart. For reference, the bytes per message of as
many plain Celery messages waiting in a queue.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from bench import lockbench
from bench.errors import BenchError
from bench.harness import Context, purge
from bench.lockbench import PLAIN
from bench.parker import Parker
from bench.scenarios import Scenario
from bench.stats import ratio, rounded
from bench.targets import Target
from pipeline.priority import Priority

MODEL = "scale"
STREAM = "{pipeline}:events"
GOAL_RATIO = 1.5
GOAL_BYTES = 1024


def _used_memory(ctx: Context) -> int:
    return int(ctx.client.info("memory")["used_memory"])


def _stream_bytes(ctx: Context) -> int:
    value = ctx.client.memory_usage(STREAM, samples=0)
    return int(value or 0)


def _keys_bytes(ctx: Context) -> Counter[str]:
    """``MEMORY USAGE`` of every key of the benchmark database, summed per key family.

    ``used_memory`` is server-wide (another client on another database moves
    it too); this counts only this database's keys, without the allocator's
    and the keyspace's own overhead. A family is the part after the hash tag
    (``park``, ``line``, ``parked``, ``events``...).
    """
    total: Counter[str] = Counter()
    batch: list[bytes] = []
    for key in ctx.client.scan_iter(count=1000):
        batch.append(key)
        if len(batch) == 1000:
            _usage(ctx, batch, total)
            batch = []
    _usage(ctx, batch, total)
    return total


def _usage(ctx: Context, keys: list[bytes], total: Counter[str]) -> None:
    pipe = ctx.client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    for key, used in zip(keys, pipe.execute(), strict=True):
        name = key.decode(errors="replace")
        family = name.split(":")[1] if name.startswith("{") and ":" in name else "other"
        total[family] += int(used or 0)


def scale_sample(ctx: Context, target: Target, parked: int, measured: int) -> dict[str, Any]:
    """One sample with *parked* background jobs; see the module docstring."""
    ctx.flush()
    worker = ctx.worker(target)
    try:
        worker.start()  # consuming from the start: no pause and resume to race with
        parker = Parker(target, MODEL)
        parker.hold()
        memory, stream, before = _used_memory(ctx), _stream_bytes(ctx), _keys_bytes(ctx)
        park_rate = parker.park(parked)
        memory, stream = _used_memory(ctx) - memory, _stream_bytes(ctx) - stream
        keys = _keys_bytes(ctx)
        keys.subtract(before)
        task = target.app.tasks["benchlocks.timed"]
        ids = [str(task.apply_async(models=[MODEL]).id) for _ in range(measured)]
        parker.wait_parked(int(Priority.NORMAL), measured)
        released = time.time()
        parker.release()
        spans = lockbench.collect_spans(ctx.client, target, ids, worker=worker)
    finally:
        ctx.stop_workers()
    ctx.flush()
    return {"gaps": lockbench.handoff_gaps(spans), "overlaps": lockbench.overlaps(spans),
            "left_blocked": lockbench.left_blocked(spans),
            "first_start_ms": (min(s.started for s in spans) - released) * 1000.0,
            "bytes_per_parked": memory / parked, "stream_bytes_per_parked": stream / parked,
            "key_bytes_per_parked": {family: round(used / parked, 1)
                                     for family, used in keys.items() if used},
            "parked_per_s": park_rate, "message_bytes": parker.message_bytes}


def plain_bytes_per_message(ctx: Context, count: int) -> tuple[float, float]:
    """``used_memory`` and key growth per plain Celery message left waiting in its queue."""
    target = lockbench.plain_target()
    ctx.flush()
    task = target.app.tasks["bench.plain.noop"]
    before, keys = _used_memory(ctx), _keys_bytes(ctx)
    with target.app.producer_or_acquire() as producer, producer.batch(max_size=1000):
        for _ in range(count):
            task.apply_async(producer=producer)
    grown = _used_memory(ctx) - before
    grown_keys = sum(_keys_bytes(ctx).values()) - sum(keys.values())
    if purge(target, target.queues) != count:
        raise BenchError(f"{PLAIN}: not all of {count} messages reached the queue")
    return grown / count, grown_keys / count


def run(ctx: Context) -> dict[str, Any]:
    """Alternate the two sizes; then the plain message size."""
    small, large = 10, ctx.size(100_000, 5_000)
    measured = ctx.size(200, 100)
    target = lockbench.pipeline_target()
    lockbench.set_publisher_store(target.app, False)
    names = [f"parked_{small}", f"parked_{large}"]
    sizes = dict(zip(names, (small, large), strict=True))
    try:
        samples = ctx.alternate(names, lambda name, _r: scale_sample(ctx, target, sizes[name],
                                                                     measured))
    finally:
        lockbench.set_publisher_store(target.app, True)
    out: dict[str, Any] = {"measured_jobs": measured, "rounds": ctx.rounds, "pool": "prefork",
                           "store": "off", "unit": "ms"}
    for name, values in samples.items():
        gaps = [g for v in values for g in v["gaps"]]
        out[name] = {**lockbench.distribution(gaps),
                     "round_p50s": [lockbench.distribution(v["gaps"])["p50"] for v in values],
                     "release_to_first_start_ms": [rounded(v["first_start_ms"]) for v in values],
                     "overlapping_jobs": [v["overlaps"] for v in values],
                     "results_left_blocked": [v["left_blocked"] for v in values],
                     "park_rate_per_s": [round(v["parked_per_s"]) for v in values]}
    small_out, large_out = out[names[0]], out[names[1]]
    out["ratio_p50"] = ratio(large_out["p50"], small_out["p50"])
    out["ratio_p99"] = ratio(large_out["p99"], small_out["p99"])
    out["ratio_goal"] = lockbench.goal(out["ratio_p50"], GOAL_RATIO, at_least=False)
    big = samples[names[1]]
    per_job = lockbench.median_of([v["bytes_per_parked"] for v in big], 1)
    out["memory"] = {
        "parked_jobs": large,
        "bytes_per_parked_job": per_job,
        "samples": [round(v["bytes_per_parked"], 1) for v in big],
        "stored_message_bytes": big[0]["message_bytes"],
        "of_which_event_stream": lockbench.median_of([v["stream_bytes_per_parked"]
                                                      for v in big], 1),
        "keys_bytes_per_parked_job": {
            "total": lockbench.median_of([sum(v["key_bytes_per_parked"].values())
                                          for v in big], 1),
            "by_key_family": big[-1]["key_bytes_per_parked"]},
        "keys_goal": lockbench.goal(lockbench.median_of(
            [sum(v["key_bytes_per_parked"].values()) for v in big], 1), GOAL_BYTES,
            at_least=False),
        **lockbench.goal(per_job, GOAL_BYTES, at_least=False),
    }
    plain_used, plain_keys = plain_bytes_per_message(ctx, large)
    out["memory"]["plain_queued_message"] = {
        "used_memory_bytes": round(plain_used, 1), "keys_bytes": round(plain_keys, 1)}
    out["memory"]["vs_plain_message"] = {
        "used_memory": ratio(per_job, plain_used),
        "keys": ratio(out["memory"]["keys_bytes_per_parked_job"]["total"], plain_keys)}
    return out


SCENARIO = Scenario("parked_scale", "hand-off latency with 10 vs 100,000 parked, memory per "
                    "parked job", run, order=140)
