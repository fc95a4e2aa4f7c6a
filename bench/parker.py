"""A fake holder of a model, and jobs parked behind it straight through the lock engine.

The driver takes the model (and a global slot) under a holder of its own, keeps
the hold renewed while it waits, and releases it to start a chain of hand-offs.
It can also park background jobs directly with ``RedisLockEngine.acquire``, with a
message built by ``pipeline.messages.envelope.envelope`` for the real
``bench.pipeline.noop`` task (priority low = 9), faster than any worker would.
"""

from __future__ import annotations

import os
import time
import uuid

from bench.errors import BenchError
from bench.targets import Target
from pipeline.broker import layout
from pipeline.locks.engine import RedisLockEngine
from pipeline.locks.resources import Demand, claims
from pipeline.locks.ticket import Acquired, Blocked, Ticket
from pipeline.messages import envelope
from pipeline.messages.header import NAME, JobHeader
from pipeline.priority import Priority
from pipeline.runtime.services import services_for

FAKE = "bench-fake-holder"
RENEW_EVERY = 5.0


class Parker:
    """Parks background jobs on the model behind a fake hold that it keeps renewed."""

    def __init__(self, target: Target, model: str) -> None:
        services = services_for(target.app)
        self.app = target.app
        self.model = model
        self.locks: RedisLockEngine = services.engine
        self.claims = claims(Demand(models=(model,)), services.settings)
        self.queue = target.queues[0]
        self.queue_key = layout.queue_key(self.app, self.queue)
        self.renewed = 0.0
        self.message_bytes = 0

    def hold(self) -> None:
        """Take the model (and a global slot) under the fake holder."""
        result = self.locks.acquire(Ticket(FAKE, FAKE, self.claims, int(Priority.NORMAL)),
                                    host="bench", pid=os.getpid())
        if not isinstance(result, Acquired):
            raise BenchError(f"the fake holder could not take {self.model}: {result}")
        self.renewed = time.monotonic()

    def renew(self) -> None:
        """Renew the fake hold if it is due."""
        if time.monotonic() - self.renewed > RENEW_EVERY:
            if self.locks.renew([FAKE]):
                raise BenchError("the fake hold was lost while parking")
            self.renewed = time.monotonic()

    def park(self, count: int) -> float:
        """Park *count* low-priority noop jobs; returns jobs parked per second."""
        started = time.perf_counter()
        for n in range(count):
            job = str(uuid.uuid4())
            now = time.time()
            message = self.app.amqp.as_task_v2(job, "bench.pipeline.noop", (), {},
                                               root_id=job)
            header = JobHeader(models=(self.model,), submitted_at=now).encode()
            stored = envelope.envelope(envelope.without_task_defaults(self.app, message.headers),
                                      message.body, int(Priority.LOW), self.queue,
                                      {NAME: header}, complete=False)
            self.message_bytes = len(stored)
            ticket = Ticket(job, job, self.claims, int(Priority.LOW),
                            submitted_ms=int(now * 1000))
            result = self.locks.acquire(ticket, host="bench", pid=os.getpid(),
                                        park_message=stored, queue_key=self.queue_key)
            if not isinstance(result, Blocked) or not result.position:
                raise BenchError(f"background job {n} was not parked: {result}")
            if n % 1000 == 0:
                self.renew()
        return count / (time.perf_counter() - started)

    def wait_parked(self, priority: int, count: int, timeout: float = 60.0) -> None:
        """Wait until *count* jobs of *priority* are parked, renewing the hold."""
        deadline = time.monotonic() + timeout
        while self.locks.parked_counts().get(priority, 0) < count:
            self.renew()
            if time.monotonic() > deadline:
                raise BenchError(f"only {self.locks.parked_counts()} parked after "
                                 f"{timeout:.0f} s, expected {count} at priority {priority}")
            time.sleep(0.05)

    def release(self) -> None:
        """End the fake hold: the model goes to the first parked job."""
        self.locks.release(FAKE, FAKE)

    def cancel(self, job_ids: list[str]) -> int:
        """Take the parked jobs of *job_ids* out of the model's line; how many were parked."""
        return sum(1 for job in job_ids if self.locks.cancel_parked(job, "benchmark"))
