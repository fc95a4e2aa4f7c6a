"""The request of a job as Celery hands it to the task, typed for what the pipeline reads.

Celery's ``Task.request`` (``celery.app.task.Context``) carries the message's
fields and headers as attributes; the pipeline's job path reads them through
:class:`JobContext`, so the reader (and mypy) sees which ones it relies on.
"""

from __future__ import annotations

from typing import Any, Protocol


class JobContext(Protocol):
    """The fields of ``Task.request`` that the job's path reads.

    Attributes:
        id: the job id.
        task: the task name.
        args, kwargs: the call's arguments.
        retries: attempts before this one (0 for the first).
        is_eager: run by ``apply()`` in the calling process, not by a worker.
        called_directly: the task was called as a function.
        delivery_info: the broker's routing key, exchange, priority, redelivered flag.
        headers: the message's extra headers (the pipeline's among them).
        chain: the steps of a chain still to run after this one (Celery pops one
            off when it sends it).
        hostname: the worker's name.
    """

    id: str
    task: str
    args: Any
    kwargs: Any
    retries: int | None
    is_eager: bool
    called_directly: bool
    delivery_info: dict[str, Any] | None
    headers: dict[str, Any] | None
    chain: list[Any] | None
    hostname: str | None
    ignore_result: bool | None
    reply_to: str | None
    timelimit: tuple[float | None, float | None] | None
    eta: Any
    expires: Any
    group: str | None
    group_index: int | None
    chord: Any
    callbacks: Any
    errbacks: Any
    root_id: str | None
    parent_id: str | None
    shadow: str | None
    origin: str | None
    replaced_task_nesting: int | None
