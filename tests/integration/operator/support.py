"""Putting jobs in each place the operator views read, straight through the lock engine."""

from __future__ import annotations

from typing import Any

from pipeline.broker import layout
from pipeline.locks.resources import EXCLUSIVE, SHARED, Claim
from pipeline.locks.ticket import AcquireResult, Ticket
from pipeline.messages import envelope
from pipeline.messages.header import NAME, JobHeader
from pipeline.runtime.services import services_for

TASK = "tests.tasks.probes.record"


def user(name: str) -> Claim:
    return Claim(f"user:{name}", EXCLUSIVE, 1)


def model(name: str, mode: str = EXCLUSIVE) -> Claim:
    return Claim(f"model:{name}", mode, 1)


def reads(name: str) -> Claim:
    return model(name, SHARED)


def message(job_id: str, *, task: str = TASK, who: str | None = None,
            priority: int = 6) -> str:
    """A task message as the broker keeps it (what a parked job stores)."""
    headers = {"id": job_id, "task": task, NAME: JobHeader(user=who).encode()}
    return envelope.envelope(headers, [["probe:ops", job_id], {}, {}], priority, "pipeline")


def lock(app: Any, job_id: str, *claims: Claim, priority: int = 6, submitted_ms: int = 0,
         who: str | None = None) -> AcquireResult:
    """Take *claims* for *job_id*, or park it with its message when they are taken."""
    ticket = Ticket(job_id, job_id, tuple(sorted(claims)), priority, "{}", submitted_ms)
    return services_for(app).locks.acquire(
        ticket, host="testhost", pid=4242, park_message=message(job_id, who=who,
                                                                 priority=priority),
        queue_key=layout.queue_key(app, "pipeline"))
