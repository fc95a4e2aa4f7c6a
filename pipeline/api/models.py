"""The REST API's request and response bodies (pydantic): what the OpenAPI schema shows.

Requests forbid unknown fields, so a misspelt option (``model`` for ``models``)
is a 422 naming it instead of a job published without it. Priorities are
checked by :func:`pipeline.priority.parse_priority`, the same check as
``apply_async``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from pipeline.job.pools import POOL_NAME
from pipeline.observe.jobshape import HistoryEntry as HistoryEntry
from pipeline.observe.jobshape import JobOut as JobOut
from pipeline.observe.jobshape import JobPage as JobPage
from pipeline.observe.jobshape import JobView as JobView
from pipeline.observe.jobshape import priority_name as priority_name
from pipeline.priority import ACCEPTED, parse_priority


def _accepted_priority(value: str | int) -> str | int:
    parse_priority(value)  # the check apply_async makes: raises naming the value
    return value


#: A priority as a request may give it (checked as ``apply_async`` checks it).
PriorityIn = Annotated[str | int, AfterValidator(_accepted_priority),
                       Field(description=ACCEPTED, examples=["high", 3])]

_STRICT = ConfigDict(extra="forbid")


class Enqueue(BaseModel):
    """One job to publish, with the options of ``apply_async``."""

    model_config = _STRICT

    task: str = Field(min_length=1, max_length=255,
                      description="Name of a registered task, e.g. tasks.demo.train.")
    args: list[JsonValue] = Field(default_factory=list, max_length=1000)
    kwargs: dict[str, JsonValue] = Field(default_factory=dict)
    priority: PriorityIn | None = Field(
        default=None, description="critical, high, normal, low or 0-9 (0 most urgent); "
                                  "the task's default when omitted.")
    user: str | None = Field(default=None, max_length=255)
    project: str | None = Field(default=None, max_length=255)
    models: list[str] | None = Field(default=None, max_length=100,
                                     description="Models the job writes (or reads, shared).")
    shared: bool = Field(default=False, description="The call's models are only read.")
    countdown: float | None = Field(default=None, ge=0, le=7 * 24 * 3600)
    task_id: str | None = Field(default=None, min_length=1, max_length=255,
                                description="The job id to use; a new UUID when omitted.")
    agent_pool: str | None = Field(
        default=None, pattern=POOL_NAME.pattern,
        description="The agent pool that runs it (its agents claim it over HTTP); the task's "
                    "own pool, or a Celery worker, when omitted.")

    def options(self) -> dict[str, Any]:
        """The ``apply_async`` options this request sets."""
        given = {"priority": self.priority, "user": self.user, "project": self.project,
                 "models": self.models, "countdown": self.countdown, "task_id": self.task_id,
                 "agent_pool": self.agent_pool}
        options = {k: v for k, v in given.items() if v is not None}
        if self.shared:
            options["shared"] = True
        return options


class EnqueueBatch(BaseModel):
    """Jobs published together: all valid, or none published."""

    model_config = _STRICT

    jobs: list[Enqueue] = Field(min_length=1, max_length=10_000)


class Enqueued(BaseModel):
    """A published job."""

    id: str
    task: str
    state: str = "QUEUED"


class EnqueuedBatch(BaseModel):
    """The jobs of a batch, in order."""

    jobs: list[Enqueued]


class Reprioritize(BaseModel):
    """The new priority of a waiting job."""

    model_config = _STRICT

    priority: PriorityIn


class Cancel(BaseModel):
    """How to cancel: a running job is only revoked unless *terminate*."""

    model_config = _STRICT

    terminate: bool = False
    reason: str = Field(default="cancelled by request", max_length=500)


class ActionResult(BaseModel):
    """What an action on a job found and did (``pipeline.observe.outcomes.ActionOutcome``)."""

    id: str
    found: bool = Field(description="Some part of the system knows the job.")
    where: str = Field(description="queued, parked, running, between, granted, delayed; "
                                   "else where it is instead: finished, dead_letter...")
    done: bool
    message: str = ""


class PositionOut(BaseModel):
    """Where a job waits (see ``pipeline.actions.control.Position``)."""

    where: str
    place: int = 0
    resource: str = ""
    priority: str | None = Field(default=None, description="critical, high, normal or low")
    queue: str = ""


class DeadLetterSelection(BaseModel):
    """Which dead letters to requeue or purge: ids, or a filter, or ``all``."""

    model_config = _STRICT

    ids: list[str] | None = Field(default=None, max_length=10_000)
    task: str | None = None
    user: str | None = None
    project: str | None = None
    priority: PriorityIn | None = None
    all: bool = Field(default=False, description="Every dead letter (required when no id "
                                                 "or filter is given).")


class DeadLetterAction(BaseModel):
    """The dead letters an action took."""

    count: int
    ids: list[str] = []


class Clear(BaseModel):
    """Flush waiting jobs; ``confirm`` must be true unless ``dry_run``."""

    model_config = _STRICT

    priority: PriorityIn | None = None
    state: Literal["queued", "parked", "all"] = "all"
    dry_run: bool = False
    confirm: bool = False


class ReleaseLock(BaseModel):
    """A resource to free by hand (its holder died, or holds it too long)."""

    model_config = _STRICT

    resource: str = Field(min_length=1, max_length=255,
                          description="user:NAME, project:NAME, model:NAME or global")
    reason: str = Field(min_length=1, max_length=500)


def query_priority(value: str | None) -> int | None:
    """A priority given in a query string (a name, or digits 0-9), checked."""
    if value is None:
        return None
    return parse_priority(int(value) if value.isdigit() else value)
