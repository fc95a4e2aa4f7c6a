"""Publishing to an agent pool: the ``agent_pool`` option, the pool's name and queue.

``train.apply_async((1,), agent_pool="prod")``, a task declared with
``@app.task(base=PipelineTask, agent_pool="prod")``, the API's ``agent_pool``
field and ``pipeline submit --agent-pool prod`` publish a job to the broker
queue of pool ``prod`` (``pool.prod``), which no Celery worker consumes: agents
of the pool claim it over HTTP (:mod:`pipeline.remote`). Everything else about
the job is as for any job: its priority, resources, workflow, retries.

No worker holds a pool job until its countdown ends or drops it when it
expires, so its header carries both as times (``not_before``, ``expires_at``),
which the claim script reads.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

from celery import Celery

from pipeline.broker import layout
from pipeline.errors import InvalidJobError
from pipeline.keys import pool_queue

#: The ``apply_async`` option (and task option) naming the pool.
OPTION = "agent_pool"
#: What a pool's name may be: it is part of key names and of ``agent:POOL:TOKEN``.
POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ACCEPTED = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_pool(value: Any, field: str = OPTION) -> str:
    """Validate a pool's name.

    Raises:
        InvalidJobError: naming the field, the value and what is accepted.
    """
    if not isinstance(value, str) or not POOL_NAME.match(value):
        raise InvalidJobError(f"{field}={value!r} is not accepted: expected a pool name of "
                              f"{ACCEPTED}")
    return value


def pool_of(task: Any, options: dict[str, Any]) -> str | None:
    """Pop ``agent_pool`` from *options* (the task's own when absent); the pool, or None.

    ``agent_pool=None`` given to a call of a task declared with a pool runs it
    on a Celery worker.

    Raises:
        InvalidJobError: a pool name that is not accepted, or a ``queue`` given
            with it (the pool is the queue).
    """
    pool = options.pop(OPTION) if OPTION in options else getattr(task, OPTION, None)
    if pool is None:
        return None
    check_pool(pool)
    queue = options.get("queue")
    if queue is not None and getattr(queue, "name", queue) != pool_queue(pool):
        raise InvalidJobError(f"queue={getattr(queue, 'name', queue)!r} is not accepted with "
                              f"agent_pool={pool!r}: a pool job goes to its pool's queue "
                              f"({pool_queue(pool)})")
    options["queue"] = pool_queue(pool)
    options.pop("routing_key", None)
    options.pop("exchange", None)
    return str(pool)


def _moment(value: Any, field: str) -> float:
    """A time given as a datetime or ISO-8601 text, as seconds since the epoch (naive = UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidJobError(f"{field}={value!r} is not accepted: expected a datetime, "
                                  "ISO-8601 text or seconds") from None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    raise InvalidJobError(f"{field}={value!r} is not accepted: expected a datetime, "
                          "ISO-8601 text or seconds")


def times_of(options: dict[str, Any], now: float | None = None) -> tuple[float | None,
                                                                       float | None]:
    """(not before, expires at) of a pool job's options, seconds since the epoch.

    Raises:
        InvalidJobError: a countdown, ETA or expiry that is not a time.
    """
    now = time.time() if now is None else now
    not_before = None
    countdown, eta = options.get("countdown"), options.get("eta")
    if countdown is not None:
        if isinstance(countdown, bool) or not isinstance(countdown, int | float):
            raise InvalidJobError(f"countdown={countdown!r} is not accepted: expected seconds")
        not_before = now + float(countdown)
    elif eta is not None:
        not_before = _moment(eta, "eta")
    expires_at = None
    expires = options.get("expires")
    if expires is not None:
        if isinstance(expires, int | float) and not isinstance(expires, bool):
            expires_at = now + float(expires)
        else:
            expires_at = _moment(expires, "expires")
    return not_before, expires_at


def pool_lists(app: Celery, pool: str) -> list[str]:
    """The broker lists of *pool*'s queue, most urgent first."""
    return layout.queue_lists(app, pool_queue(pool))
