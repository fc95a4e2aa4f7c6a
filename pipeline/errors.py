"""Errors raised by the pipeline.

Every error a user can cause names the field, the value and what is accepted.
Each class can be rebuilt as ``cls(*exc.args)`` so it survives the JSON result
backend and the prefork pool's pickling of exceptions::

    PipelineError
    ├── ConfigurationError      a pipeline_* setting is unknown or has the wrong type
    ├── InvalidJobError         a call's priority, resources or arguments are not accepted
    ├── LockError
    │   ├── LockNotAcquired     an eager call met a resource that another job holds
    │   └── LockLost            a lease expired while its job still ran
    ├── StoreError
    │   └── StoreNotMigrated    the job store's schema is not at the current head
    ├── WorkflowError           a workflow cannot be built or run as asked
    ├── ServiceError            Redis or the database is unreachable or unsafe
    ├── UnknownJobError         no part of the system knows the job id asked about
    ├── AmbiguousJobError       a job id prefix matches several jobs (it lists them)
    ├── ActionRefused           an operator action does not apply as things stand (API 409)
    ├── JobLost                 the job's process died on each of its deliveries
    ├── LeaseRefused            an agent's call shows a lease that is not its job's current one
    └── AgentJobFailed          the agent that ran a pool job reported that it failed
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class ConfigurationError(PipelineError):
    """A ``pipeline_*`` setting is unknown, has the wrong type or a bad value."""


class InvalidJobError(PipelineError, ValueError):
    """A call's options (priority, resources, arguments) are not accepted.

    Subclasses ``ValueError`` so callers validating input with ``except
    ValueError`` keep working.
    """


class LockError(PipelineError):
    """Base class of lock failures."""


class LockNotAcquired(LockError):
    """A resource is held by another job and the call cannot wait (eager mode)."""


class LockLost(LockError):
    """A job's lease expired and another holder may now own the resource."""


class StoreError(PipelineError):
    """The job store cannot be read or written."""


class StoreNotMigrated(StoreError):
    """The database schema is missing or behind; the message names the fix."""


class WorkflowError(PipelineError):
    """A workflow cannot be built or run as asked."""


class ServiceError(PipelineError):
    """Redis or the database is unreachable or configured unsafely."""


class UnknownJobError(PipelineError, LookupError):
    """No part of the system (locks, broker lists, job store, results) knows a job id."""


class AmbiguousJobError(PipelineError, LookupError):
    """A job id prefix matches several jobs; the message lists them."""


class ActionRefused(PipelineError):
    """An operator action does not apply as things stand (a lock nobody holds)."""


class JobLost(PipelineError):
    """The process running a job died on each of its last deliveries (out of memory, a crash).

    The job is dead-lettered with the reason "worker lost" after
    ``pipeline_max_deliveries`` deliveries instead of being redelivered forever.
    """


class LeaseRefused(PipelineError):
    """An agent's call on a claimed job shows a lease that is not the job's current one.

    A late agent (its lease ran out and the job was given back), a second
    report, or a job cancelled meanwhile: the call changes nothing. ``why`` is
    ``none`` (the job holds no lease), ``stale`` (another lease), ``expired``
    (its lease ran out: given back now), ``lost`` (its locks were released by
    hand: given back) or ``cancelled``.
    """

    def __init__(self, message: str, why: str = "stale") -> None:
        super().__init__(message, why)
        self.why = why

    def __str__(self) -> str:
        return str(self.args[0])


class AgentJobFailed(PipelineError):
    """The agent that ran a pool job reported that it failed (``AsyncResult.get()`` raises it).

    The message is the error the agent reported.
    """
