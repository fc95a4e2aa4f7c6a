"""Workflows: a chain of pipeline tasks that holds its resources as one job.

``chain(prep.s(1), train.s()).apply_async(user="alice")`` and
``workflow(prep.s(1), train.s(), name="retrain", user="alice").apply_async()``
are workflows. When the first step is published, the whole chain is stamped:
its resource set is the union of every step's resources plus the call's, its
id is the first step's id (Celery's root id), and every step carries that
header and the call's priority. The first step takes the locks under the
workflow id; each later step takes the hold over; the last step (or a failure
or a cancel) releases it. A step that retries keeps it for its retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery, chain
from celery.canvas import Signature, maybe_signature

from pipeline.errors import InvalidJobError, WorkflowError
from pipeline.header import NAME, JobHeader
from pipeline.priority import parse_priority
from pipeline.resources import (
    RESOURCE_OPTIONS,
    Demand,
    check_option_names,
    declared_models,
    demand_from_options,
)

_REFUSED = ("group", "chord", "chain")


def check_step(step: Any, app: Celery, index: int) -> Signature:
    """Validate one step: a plain task signature, not a group, chord or nested chain.

    Raises:
        WorkflowError: naming the step and what is accepted.
    """
    sig = maybe_signature(step, app=app)
    kind = sig.get("subtask_type") if isinstance(sig, dict) else None
    if not isinstance(sig, Signature) or kind in _REFUSED:
        raise WorkflowError(
            f"step {index} of the workflow is {kind or type(step).__name__!r}: a workflow's "
            f"steps must be task signatures (task.s(...)); groups, chords and nested chains "
            f"inside a workflow are not supported because their locks could not be held as one"
        )
    if sig.options.get("priority") is not None:
        try:
            parse_priority(sig.options["priority"])
        except InvalidJobError as exc:
            raise InvalidJobError(f"step {index} of the workflow: {exc}") from None
    return sig


def step_demand(sig: Signature, app: Celery) -> Demand:
    """The resources one step declares: its task's models plus its own options."""
    task = app.tasks.get(sig.task)
    options = dict(sig.options)
    check_option_names(options)
    return demand_from_options(options, *declared_models(task))


def stamp_chain(app: Celery, options: dict[str, Any], first: Demand, task_id: str,
                priority: int | None, *, submitted_at: float,
                name: str | None = None) -> JobHeader:
    """Stamp the remaining steps of a chain being published; returns the first step's header.

    ``options["chain"]`` holds the steps after the first, last step first, as
    Celery passes them to the first step's ``apply_async``.
    """
    remaining = options["chain"]
    steps = [check_step(step, app, len(remaining) + 2 - n)
             for n, step in enumerate(remaining, start=1)]
    union = first
    for sig in steps:
        union = union.union(step_demand(sig, app))
    header = JobHeader.of(union, submitted_at=submitted_at, steps=len(steps) + 1, step=1,
                          priority=priority,
                          workflow_name=None if name is None else str(name)).but(workflow=task_id)
    stamped = []
    # Celery passes the remaining steps last first: number them in run order.
    for index, sig in zip(range(len(steps) + 1, 1, -1), steps, strict=True):
        clone = sig.clone()
        for option in RESOURCE_OPTIONS:
            clone.options.pop(option, None)
        clone.options["headers"] = {**(clone.options.get("headers") or {}),
                                    NAME: header.but(step=index).encode()}
        if priority is not None:
            clone.options["priority"] = priority
        stamped.append(clone)
    options["chain"] = stamped
    return header


class Workflow:
    """A named chain of pipeline task signatures; see :func:`workflow`."""

    def __init__(self, steps: Sequence[Any], *, name: str | None = None,
                 options: dict[str, Any] | None = None) -> None:
        if not steps:
            raise WorkflowError("a workflow needs at least one step")
        self.steps = list(steps)
        self.name = name
        self.options = dict(options or {})

    def _chain(self) -> Any:
        first = maybe_signature(self.steps[0])
        app = first.app if isinstance(first, Signature) else None
        for index, step in enumerate(self.steps, start=1):
            check_step(step, app, index)
        return chain(*self.steps)

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Publish the workflow; options (priority, user, project, models) apply to every step.

        Raises:
            WorkflowError, InvalidJobError: before anything is published.
        """
        merged = {**self.options, **options}
        if self.name is not None:
            merged["workflow_name"] = self.name
        return self._chain().apply_async(args, kwargs, **merged)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)


def workflow(*steps: Any, name: str | None = None, **options: Any) -> Workflow:
    """Build a workflow from task signatures.

    Args:
        *steps: ``task.s(...)`` signatures, run in order, each getting the
            previous one's result.
        name: a name for the workflow, kept in the job store.
        **options: ``priority``, ``user``, ``project``, ``models``, ``shared``
            and any other ``apply_async`` option, applied to every step.
    """
    return Workflow(steps, name=name, options=options)
