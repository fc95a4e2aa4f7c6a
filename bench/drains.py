"""A drain timed by marker jobs, the same way for apps that store results and apps that don't.

Each sample publishes ``N`` messages to a paused worker: a marker job first,
``N - 2`` trivial jobs, a marker job last (``bench/marks.py``), resumes the
worker, and waits until the last marker has run. The rate is
``N / (last marker's time - first marker's time)``: from the first job's start
to the last job's run, as the drains timed from results had it (first start to
last result).

Why this favours neither side:

- the trivial jobs are unchanged and do no extra work; the two markers are
  jobs of the same kind as the others (for the pipeline: the same four locks),
  and both apps' markers run the same function: one ``HSET`` each;
- while the drain runs, the harness reads one hash field every 20 ms (and the
  backlog every 2 s, to notice a stall): the same small load for both, and no
  longer the result keys of thousands of jobs;
- with ``-c 2`` the job before the last marker may still run on the other pool
  process when the marker writes: at most one trivial job's time (about 1 ms
  in a drain of seconds), for both apps alike.

After the last marker the worker is paused and the harness checks, outside the
timing, that the drain really is over and went well: every message taken and
acknowledged (the queues and kombu's ``unacked`` hash empty), no ERROR line in
the worker's log, and, for an app that stores results, every result SUCCESS
(read and deleted); for an app that ignores them, no result stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import marks
from bench.errors import BenchError
from bench.harness import Worker, publish, read_results
from bench.lockbench import redis_cpu_seconds, tree_cpu_seconds


@dataclass(frozen=True)
class Drain:
    """One drain: its jobs, the markers' times, CPU seconds spent meanwhile."""

    jobs: int
    first: float
    last: float
    worker_cpu: float
    redis_cpu: float

    @property
    def rate(self) -> float:
        """Jobs per second from the first marker to the last."""
        return self.jobs / (self.last - self.first)


def marked_drain(worker: Worker, jobs: int, *, stall: float = 60.0) -> Drain:
    """Fill the paused worker's queue with *jobs* messages between two markers; drain; check.

    Raises:
        BenchError: the target has no marker job, a job failed, the worker
            died or stalled, or messages were left after the last marker.
    """
    target = worker.target
    if target.send_mark is None:
        raise BenchError(f"{target.name}: no marker job to time a drain with")
    if jobs < 3:
        raise BenchError(f"a marked drain needs at least 3 jobs, not {jobs}")
    worker.pause()
    worker.settle()
    client = worker.client
    client.delete(marks.MARKS_KEY)
    ids = [target.send_mark(marks.MARKS_KEY, marks.FIRST), *publish(target, jobs - 2),
           target.send_mark(marks.MARKS_KEY, marks.LAST)]
    log_offset = worker.log_offset()
    pid = worker.process.pid if worker.process is not None else 0
    cpu, server = tree_cpu_seconds(pid), redis_cpu_seconds(client)
    worker.resume()
    last = marks.wait_for_mark(worker, marks.LAST, stall=stall)
    cpu, server = tree_cpu_seconds(pid) - cpu, redis_cpu_seconds(client) - server
    worker.pause()
    marks.wait_drained(worker)
    first = marks.read_marks(worker, marks.FIRST)[0]
    errors = worker.errors_since(log_offset)
    if errors:
        raise BenchError(f"{worker.nodename} logged {len(errors)} errors during the drain, "
                         f"the first: {errors[0]}")
    if first is None or first > last:
        raise BenchError(f"{target.name}: the first marker ran at {first}, the last at {last}")
    keys = [target.result_key(i) for i in ids]
    if target.results:
        missing = sum(1 for t in read_results(client, target, keys) if t is None)
        if missing:
            raise BenchError(f"{target.name}: {missing} of {jobs} results missing after the "
                             "drain")
    else:
        stored = sum(int(client.exists(*keys[i:i + 1000])) for i in range(0, len(keys), 1000))
        if stored:
            raise BenchError(f"{target.name} ignores results, yet {stored} of {jobs} jobs "
                             "stored one: its worker is not configured as Celery ships")
    return Drain(jobs, first, last, cpu, server)
