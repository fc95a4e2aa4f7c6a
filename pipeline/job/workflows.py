"""Workflows: consecutive pipeline tasks of a chain that hold their resources as one job.

``chain(prep.s(1), train.s()).apply_async(user="alice")`` and
``workflow(prep.s(1), train.s(), name="retrain", user="alice").apply_async()``
are workflows. When the first step is published, the steps that follow it
are stamped: the workflow's resource set is the union of every step's
resources plus the call's, its id is the first step's id, and every step
carries that header. Each step runs at its own priority, as in Celery (the
options of ``chain(...).apply_async`` reach its first step only; those of
``workflow(...)`` reach every step that has none of its own). The first step
takes the locks under the workflow id; each later step takes the hold over;
the last step (or a failure or a cancel) releases it. A step that retries
keeps it for its retry.

A workflow is a run of consecutive task signatures. Where a chain reaches a
group or a chord, the workflow ends with the step before it: the group's or
chord's members are no steps of it and take their own locks when they start
(a member that is itself a chain of tasks is a workflow of its own, stamped
when it is published). See :mod:`pipeline.job.canvas` for the checks made on the
whole canvas when it is submitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery, chain
from celery.canvas import Signature, maybe_signature

from pipeline.errors import InvalidJobError, WorkflowError
from pipeline.locks.resources import (
    RESOURCE_OPTIONS,
    Demand,
    check_option_names,
    declared_models,
    demand_from_options,
)
from pipeline.messages.header import NAME, JobHeader
from pipeline.priority import parse_priority


def is_task(item: Any) -> bool:
    """Whether a canvas item is one task signature (not a group, chord or chain)."""
    return isinstance(item, dict) and item.get("subtask_type") not in ("group", "chord", "chain")


def check_step(step: Any, app: Celery | None, index: int) -> Signature:
    """Validate one task signature of a workflow: its priority and resource options.

    Raises:
        InvalidJobError: naming the step, the option and what is accepted.
    """
    sig = maybe_signature(step, app=app)
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
                name: str | None = None) -> JobHeader | None:
    """Stamp the steps of the workflow a chain's first step starts; its header, or None.

    ``options["chain"]`` holds the steps after the first, last step first, as
    Celery passes them to the first step's ``apply_async``. The run of task
    signatures right after the first step is stamped; a group or chord and
    what follows it are left as they are. None when the next step is a group
    or chord (the first step is then a job on its own).
    """
    remaining = list(options["chain"])
    run = 0
    while run < len(remaining) and is_task(maybe_signature(remaining[-1 - run], app=app)):
        run += 1
    if run == 0:
        return None
    steps = [check_step(remaining[-1 - n], app, n + 2) for n in range(run)]
    union = first
    for sig in steps:
        union = union.union(step_demand(sig, app))
    header = JobHeader.of(union, submitted_at=submitted_at, steps=run + 1, step=1,
                          priority=priority,
                          workflow_name=None if name is None else str(name)).but(workflow=task_id)
    stamped = []
    for index, sig in enumerate(steps, start=2):
        clone = sig.clone()
        for option in RESOURCE_OPTIONS:
            clone.options.pop(option, None)
        clone.options["headers"] = {**(clone.options.get("headers") or {}),
                                    NAME: header.but(step=index).encode()}
        stamped.append(clone)
    # Back in Celery's order: last step first, the rest of the chain before them.
    options["chain"] = remaining[:len(remaining) - run] + stamped[::-1]
    return header


def continues(chain_field: Sequence[Any] | None, workflow_id: str | None) -> bool:
    """Whether the next step in a request's ``chain`` is a step of *workflow_id*.

    Celery keeps the steps still to run in the request, last step first; a
    step of the same workflow carries its header.
    """
    if not chain_field or workflow_id is None:
        return False
    following = chain_field[-1]
    options = following.get("options") if isinstance(following, dict) else None
    headers = (options or {}).get("headers") or {}
    header = headers.get(NAME) if isinstance(headers, dict) else None
    return isinstance(header, dict) and header.get("workflow") == workflow_id


class Workflow:
    """A named chain of pipeline task signatures; see :func:`workflow`."""

    def __init__(self, steps: Sequence[Any], *, name: str | None = None,
                 options: dict[str, Any] | None = None) -> None:
        if not steps:
            raise WorkflowError("a workflow needs at least one step")
        self.steps = list(steps)
        self.name = name
        self.options = dict(options or {})

    def _chain(self, priority: Any) -> Any:
        first = maybe_signature(self.steps[0])
        app = first.app if isinstance(first, Signature) else None
        steps = []
        for index, step in enumerate(self.steps, start=1):
            sig = maybe_signature(step, app=app)
            if is_task(sig):
                check_step(sig, app, index)
                if priority is not None and sig.options.get("priority") is None:
                    sig = sig.clone()
                    sig.options["priority"] = parse_priority(priority)
            steps.append(sig)
        return chain(*steps)

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Publish the workflow; options (priority, user, project, models) apply to every step.

        A step's own priority wins over the workflow's.

        Raises:
            WorkflowError, InvalidJobError: before anything is published.
        """
        merged = {**self.options, **options}
        if self.name is not None:
            merged["workflow_name"] = self.name
        return self._chain(merged.pop("priority", None)).apply_async(args, kwargs, **merged)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)


def workflow(*steps: Any, name: str | None = None, **options: Any) -> Workflow:
    """Build a workflow from task signatures.

    Args:
        *steps: ``task.s(...)`` signatures, run in order, each getting the
            previous one's result. A group or chord among them runs as in any
            Celery chain (its members take their own locks); the workflow's
            hold covers the run of task signatures up to it.
        name: a name for the workflow, kept in the job store.
        **options: ``priority``, ``user``, ``project``, ``models``, ``shared``
            and any other ``apply_async`` option, applied to every step.
    """
    return Workflow(steps, name=name, options=options)
