"""The job header: what a pipeline job carries from its publisher to the worker.

Every pipeline message holds one header, :data:`NAME`, written by
:meth:`JobHeader.encode` when the job is published and read back by
:meth:`JobHeader.decode` in the worker (and wherever a stored message is
read). Nothing else reads or writes its fields. The header is versioned: a
worker reads every version up to :data:`VERSION` and refuses a newer one with
an error that says so, instead of running the job without its locks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.errors import InvalidJobError
from pipeline.locks.resources import Demand

#: The message header that carries a :class:`JobHeader`.
NAME = "pipeline"
#: The header version this code writes; it reads every version up to it.
VERSION = 1
#: A message header asking the pipeline's broker transport to put the message
#: at the head of its queue (the next step of a workflow holding its locks);
#: the transport removes it before the message is stored.
FRONT = "pipeline_front"
#: A message header marking a copy of a job published again to check that the
#: job did not finish meanwhile (:func:`pipeline.job.starting.start`).
RECHECK = "pipeline_recheck"

_LISTS = ("models", "shared_models")
_TEXTS = ("user", "project", "workflow", "workflow_name", "pool")
_INTS = ("steps", "step", "priority", "earlier_attempts")
_TIMES = ("submitted_at", "not_before", "expires_at")
#: The type each field is read as.
_TYPES: dict[str, type] = {**dict.fromkeys(_TEXTS, str), **dict.fromkeys(_INTS, int),
                           **dict.fromkeys(_LISTS, tuple), **dict.fromkeys(_TIMES, float)}


@dataclass(frozen=True)
class JobHeader:
    """A job's declared resources and its place in a workflow.

    Attributes:
        user: the user the job runs for (one running job per user).
        project: the project it counts against.
        models: models it writes (exclusive).
        shared_models: models it only reads.
        workflow: the hold it runs under when that is not its own: the
            workflow id for a step of a workflow, the parent's hold for a
            job published inside a running job that covers it (a guest).
        workflow_name: the name given with ``workflow(..., name=...)``.
        steps: the number of steps of its workflow.
        step: its step number (1 = the first step).
        priority: the level the workflow (or job) was submitted at, for the
            records; the message's own priority is the one it runs at.
        submitted_at: when it was published, seconds since the epoch: its
            place in line among jobs of its priority.
        pool: the agent pool it was published to (agents claim it over HTTP,
            :mod:`pipeline.remote`); None for a job a Celery worker runs.
        not_before: a pool job's countdown or ETA (seconds since the epoch):
            no agent claims it earlier. A worker reads Celery's own ``eta``.
        expires_at: a pool job's ``expires`` (seconds since the epoch): one
            still unclaimed then is dropped, REVOKED, as a worker drops it.
        earlier_attempts: attempts made before it was dead-lettered and requeued
            (its attempt numbers go on from there; its retries start afresh).
        version: the header version it was written with.
    """

    user: str | None = None
    project: str | None = None
    models: tuple[str, ...] = ()
    shared_models: tuple[str, ...] = ()
    workflow: str | None = None
    workflow_name: str | None = None
    steps: int | None = None
    step: int | None = None
    priority: int | None = None
    submitted_at: float | None = None
    pool: str | None = None
    not_before: float | None = None
    expires_at: float | None = None
    earlier_attempts: int | None = None
    version: int = field(default=VERSION, compare=False)

    @classmethod
    def of(cls, demand: Demand, **fields: Any) -> JobHeader:
        """The header of a job declaring *demand* (plus the other *fields*)."""
        return cls(user=demand.user, project=demand.project, models=demand.models,
                   shared_models=demand.shared_models, workflow=demand.workflow, **fields)

    @property
    def demand(self) -> Demand:
        """The resources the header declares."""
        return Demand(self.user, self.project, self.models, self.shared_models, self.workflow)

    @property
    def is_later_step(self) -> bool:
        """A step after the first of a workflow: it takes the workflow's hold over."""
        return self.step is not None and self.step > 1

    def but(self, **changes: Any) -> JobHeader:
        """A copy with *changes*."""
        return replace(self, **changes)

    def encode(self) -> dict[str, Any]:
        """The header as it travels in the message (JSON; unset fields left out)."""
        out: dict[str, Any] = {"version": VERSION}
        for name in _TEXTS + _INTS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name in _LISTS:
            value = getattr(self, name)
            if value:
                out[name] = list(value)
        for name in _TIMES:
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 6)
        return out

    @classmethod
    def decode(cls, raw: Any) -> JobHeader:
        """Read a header written by :meth:`encode`; ``None`` or ``{}`` is an empty header.

        Raises:
            InvalidJobError: the header is not an object, was written by a newer
                version, or a field has the wrong type (naming it).
        """
        if not raw:
            return EMPTY
        if not isinstance(raw, Mapping):
            raise InvalidJobError(f"header {NAME}={raw!r} is not accepted: expected an object")
        version = raw.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidJobError(
                f"header {NAME}.version={version!r} is not accepted: expected an int from 1 "
                f"to {VERSION}")
        if version > VERSION:
            raise InvalidJobError(
                f"header {NAME}.version={version} is newer than this worker reads (up to "
                f"{VERSION}): the job was published by a newer release; upgrade this worker")
        fields: dict[str, Any] = {"version": version}
        for name, value in raw.items():
            kind = _TYPES.get(name)
            if kind is None or value is None:
                continue  # the version, or a field a later minor release added
            if kind is tuple:
                if not isinstance(value, list | tuple) or not all(
                        isinstance(v, str) for v in value):
                    raise InvalidJobError(f"header {NAME}.{name}={value!r} is not accepted: "
                                          "expected a list of names")
                fields[name] = tuple(value)
            elif kind is float:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise InvalidJobError(f"header {NAME}.{name}={value!r} is not accepted: "
                                          "expected seconds since the epoch")
                fields[name] = float(value)
            elif isinstance(value, kind) and not isinstance(value, bool):
                fields[name] = value
            else:
                raise InvalidJobError(f"header {NAME}.{name}={value!r} is not accepted: "
                                      f"expected {kind.__name__} or nothing")
        return cls(**fields)


#: The header of a job published without one (``send_task``, another client).
EMPTY = JobHeader()


def of_request(request: object) -> JobHeader:
    """The header of the job a Celery request describes (empty when it has none).

    A worker's request carries the message's headers as attributes; an eager
    call's (``apply()``) keeps them in ``request.headers``.
    """
    raw = getattr(request, NAME, None)
    if raw is None:
        headers = getattr(request, "headers", None)
        raw = headers.get(NAME) if isinstance(headers, Mapping) else None
    return JobHeader.decode(raw)


def in_options(options: Mapping[str, Any]) -> Any:
    """The raw header in ``apply_async`` options, if any (not decoded)."""
    headers = options.get("headers") or {}
    return headers.get(NAME) if isinstance(headers, Mapping) else None
