"""Checks of a whole Celery canvas when its first job is published.

Celery publishes a canvas piece by piece: the first job now, the next step of
a chain when the step before it ends, a chord's body when its header is done,
a callback when its job ends. Each piece is checked again when it is
published, but an error found then would fail a job long after the caller
was told the canvas was accepted. So the first publish checks every task
signature the canvas holds (its priority, its resource options, its models)
and every run of consecutive tasks that will form a workflow (one user and
one project at most), and raises before anything is published.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from celery import Celery
from celery.canvas import Signature, maybe_signature

from pipeline.errors import InvalidJobError
from pipeline.job.pools import OPTION as POOL_OPTION
from pipeline.job.pools import check_pool
from pipeline.locks.resources import (
    Demand,
    check_option_names,
    declared_models,
    demand_from_options,
)
from pipeline.priority import parse_priority

#: ``apply_async`` options that carry signatures published later.
LATER = ("chain", "chord", "link", "link_error")


def check(app: Celery, options: dict[str, Any]) -> None:
    """Check every signature of the canvas whose first job is published with *options*.

    Raises:
        InvalidJobError: naming the task, the option and what is accepted.
    """
    for field in LATER:
        items = _listed(options.get(field))
        if field == "chain":
            # Celery passes the steps still to run last first; the job being
            # published is step 1.
            _check_sequence(app, items[::-1], first_step=2)
        else:
            for item in items:
                _check_item(app, item)


def _listed(value: Any) -> list[Any]:
    if not value:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _members(sig: Signature) -> Iterator[Any]:
    kind = sig.get("subtask_type")
    if kind == "chord":
        header = sig.kwargs.get("header")
        yield from (_members(header) if isinstance(header, Signature) else _listed(header))
        yield sig.kwargs.get("body")
    elif kind == "group":
        yield from list(sig.kwargs.get("tasks") or ())


def _check_item(app: Celery, item: Any) -> None:
    if not item:
        return
    sig = maybe_signature(item, app=app)
    kind = sig.get("subtask_type")
    if kind == "chain":
        _check_sequence(app, list(sig.kwargs.get("tasks") or ()))
    elif kind in ("chord", "group"):
        for member in _members(sig):
            _check_item(app, member)
    else:
        _check_task(app, sig, f"task {sig.task} in the canvas")
    for field in ("link", "link_error"):
        for callback in _listed(sig.options.get(field)):
            _check_item(app, callback)


def _check_sequence(app: Celery, items: list[Any], first_step: int = 1) -> None:
    """Check a chain's items in run order, and that each run of tasks can be one workflow."""
    run: Demand | None = None
    for number, item in enumerate(items, start=first_step):
        sig = maybe_signature(item, app=app)
        kind = sig.get("subtask_type")
        if kind in ("chain", "chord", "group"):
            _check_item(app, sig)
            run = None
            continue
        where = f"step {number} of the chain ({sig.task})"
        demand = _check_task(app, sig, where)
        try:
            run = demand if run is None else run.union(demand)
        except InvalidJobError as exc:
            raise InvalidJobError(f"{where}: {exc}") from None
        for field in ("link", "link_error"):
            for callback in _listed(sig.options.get(field)):
                _check_item(app, callback)


def _check_task(app: Celery, sig: Signature, where: str) -> Demand:
    options = dict(sig.options)
    try:
        if options.get("priority") is not None:
            parse_priority(options["priority"])
        check_option_names(options)
        if options.get(POOL_OPTION) is not None:
            check_pool(options[POOL_OPTION])
        return demand_from_options(options, *declared_models(app.tasks.get(sig.task)))
    except InvalidJobError as exc:
        raise InvalidJobError(f"{where}: {exc}") from None
