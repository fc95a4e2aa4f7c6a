"""The request and response bodies of the agents' routes (:mod:`pipeline.api.agents`).

Requests forbid unknown fields and name the field of every rejected value, as
the other routes' bodies do (:mod:`pipeline.api.models`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from pipeline.job.pools import POOL_NAME
from pipeline.remote.claims import ClaimedJob

_STRICT = ConfigDict(extra="forbid")
#: The longest a claim may wait for a job (a long poll), in seconds.
MAX_WAIT = 60.0
AGENT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"
LEASE = Field(min_length=1, max_length=200,
              description="The lease the claim returned (opaque; it carries the fencing token).")


class ClaimIn(BaseModel):
    """An agent asks for the most urgent job of its pool whose locks can all be taken."""

    model_config = _STRICT

    agent_id: str = Field(pattern=AGENT_ID, description="The agent's name (1-128 letters, "
                          "digits, '.', '_', '@' or '-'); the store records it on the job.")
    pool: str = Field(pattern=POOL_NAME.pattern, description="The pool to claim from: the "
                      "token's own (an admin's token may claim from any).")
    wait: float = Field(default=0.0, ge=0.0, le=MAX_WAIT, description=(
        "Seconds to wait for a job when none can run now (a long poll, woken by a publish "
        "or a hand-off to the pool); 0 answers at once."))


class ClaimedOut(BaseModel):
    """The job claimed: run ``task(*args, **kwargs)``, heartbeat, then complete or fail."""

    id: str
    task: str
    args: list[JsonValue]
    kwargs: dict[str, JsonValue]
    priority: int = Field(description="0 (most urgent) to 9.")
    resources: list[str] = Field(description="The locks the job holds (user:NAME, "
                                             "model:NAME, project:NAME, global).")
    lease: str = Field(description="Show it on every call about this job.")
    lease_expires_at: datetime = Field(description="When the lease (and the locks) run out "
                                                   "unless a heartbeat renews them.")
    lease_seconds: float = Field(description="How long a heartbeat renews the lease for; "
                                             "send one every third of it.")
    fencing_token: int = Field(description="Grows with every grant of a resource: pass it to "
                                           "a store that must refuse a late writer.")
    attempt: int = Field(description="1 for the first attempt, 2 for the first retry...")
    pool: str
    workflow: str | None = Field(default=None, description="The workflow it is a step of.")

    @classmethod
    def of(cls, job: ClaimedJob) -> ClaimedOut:
        """From the library's :class:`~pipeline.remote.claims.ClaimedJob`."""
        return cls(id=job.id, task=job.task, args=job.args, kwargs=job.kwargs,
                   priority=job.priority, resources=list(job.resources), lease=job.lease,
                   lease_expires_at=at(job.lease_expires_at), lease_seconds=job.lease_seconds,
                   fencing_token=job.fencing_token, attempt=job.attempt, pool=job.pool,
                   workflow=job.workflow)


class LeaseIn(BaseModel):
    """A call about a claimed job: its lease."""

    model_config = _STRICT

    lease: str = LEASE


class CompleteIn(BaseModel):
    """The job succeeded: its result (any JSON value), what ``AsyncResult.get()`` returns."""

    model_config = _STRICT

    lease: str = LEASE
    result: JsonValue = None


class FailIn(BaseModel):
    """The job failed: ``AsyncResult.get()`` raises ``AgentJobFailed`` with *error*."""

    model_config = _STRICT

    lease: str = LEASE
    error: str = Field(min_length=1, max_length=10_000, description="What went wrong.")
    retry: bool = Field(default=True, description=(
        "Run it again after the task's backoff while attempts remain (dead-lettered after "
        "the last one); false fails it at once."))
    traceback: str | None = Field(default=None, max_length=100_000)


class ReleaseIn(BaseModel):
    """The agent gives the job back (it is stopping): to its pool at once, no attempt spent."""

    model_config = _STRICT

    lease: str = LEASE
    reason: str = Field(default="given back by its agent", min_length=1, max_length=500)


class LeaseOut(BaseModel):
    """A lease renewed (or a start recorded)."""

    id: str
    lease_expires_at: datetime
    lease_seconds: float


class OutcomeOut(BaseModel):
    """What became of the job."""

    id: str
    state: str = Field(description="COMPLETED, FAILED, RETRY (it runs again after its "
                                   "backoff), DEAD_LETTERED, or QUEUED (given back)")


class RefusedOut(BaseModel):
    """A call refused because its lease is not the job's current one (409)."""

    detail: str
    why: str = Field(description="none, stale, expired, lost or cancelled")


def at(seconds: float) -> datetime:
    """Seconds since the epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def as_json(value: Any) -> Any:
    """A model as JSON-ready data."""
    return value.model_dump(mode="json")
