"""Batch enqueue: many jobs validated together, then published in one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.canvas import Signature

from pipeline.errors import InvalidJobError, PipelineError
from pipeline.messages.envelope import dumps

BATCH_MAX = 10_000


def _check(app: Celery, index: int, item: Any) -> Signature:
    if not isinstance(item, Signature):
        raise InvalidJobError(f"item {index} is {type(item).__name__}: expected a task "
                              f"signature such as task.s(...) or task.s(...).set(priority=...)")
    task = app.tasks.get(item.task)
    if task is None:
        raise InvalidJobError(f"item {index}: task {item.task!r} is not registered")
    try:
        dumps([item.args, item.kwargs])
    except (TypeError, ValueError) as exc:
        raise InvalidJobError(f"item {index}: its arguments are not JSON serializable "
                              f"({exc}); messages are JSON only") from exc
    options = dict(item.options)
    try:
        if hasattr(task, "models"):
            from pipeline.job import publishing

            publishing.prepare(task, options, "batch-check")
    except PipelineError as exc:
        raise InvalidJobError(f"item {index}: {exc}") from exc
    return item


def enqueue_many(app: Celery, items: Sequence[Any]) -> list[Any]:
    """Validate every item, then publish them all through one Redis pipeline.

    Args:
        app: the Celery app.
        items: task signatures; options set with ``.set(priority=..., user=...)``.

    Returns:
        The ``AsyncResult`` of each item, in order.

    Raises:
        InvalidJobError: naming the first bad item (its index, field and value);
            nothing is published then.
    """
    if len(items) > BATCH_MAX:
        raise InvalidJobError(f"items has {len(items)} jobs: a batch takes at most {BATCH_MAX}")
    checked = [_check(app, index, item) for index, item in enumerate(items)]
    results = []
    with app.producer_or_acquire() as producer, producer.batch(max_size=len(checked) * 2 + 1):
        for sig in checked:
            results.append(sig.apply_async(producer=producer))
    return results
