"""Redis not answering: a worker rides out an outage, a publisher fails fast.

A worker holding a job repeats the Redis calls the job needs with backoff
while Redis does not answer (a crash, a restart, a failover): :func:`ride_out`,
the one loop every such call goes through. A job about to start waits a few
seconds (:data:`BACKOFF`) and is requeued past them; what a job that has run
still has to write (its result, :mod:`pipeline.job.results`; its release and
its event, :mod:`pipeline.job.release`) waits up to
``pipeline_redis_outage_limit`` seconds (:func:`backoff_for`), so a Redis that
crashed and came back within that time leaves no trace on the job. Its
acknowledgement is kept by :mod:`pipeline.broker.qos` until it goes through.


Celery's defaults wait about 19 s (the Redis result backend's reconnect policy,
20 tries a second apart) and then blame "the result store backend". With
:func:`bound_waits`, every wait a publish can meet (connecting, the result
backend's reconnects, the publish retries) ends within about
``pipeline_publish_timeout`` seconds, and :func:`unreachable` lets the task
raise a ``ServiceError`` naming the broker. Nothing is half-published: the
result subscription comes before the message is sent, and a chain sends only
its first step.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)
T = TypeVar("T")
#: What a call to a Redis that does not answer raises.
OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
#: Seconds between the tries of :func:`ride_out` (about 8 s in all).
BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0)
#: The longest wait between two tries within an outage limit (:func:`backoff_for`).
BACKOFF_MAX = 4.0
#: Seconds between two tries of a publish.
INTERVAL = 0.5
#: Celery's own defaults: a value still equal to them was not set by the app.
CELERY_PUBLISH_POLICY = {"max_retries": 3, "interval_start": 0, "interval_max": 1,
                         "interval_step": 0.2}
CELERY_CONNECTION_TIMEOUT = 4.0
_ERRORS = (OperationalError, redis.ConnectionError, redis.TimeoutError, ConnectionError,
           socket.timeout, OSError)


def backoff_for(limit: float) -> tuple[float, ...]:
    """The waits between tries that add up to *limit* seconds: 0.25, 0.5, 1, 2, 4, 4...

    The last wait is cut so that the waits add up to *limit*.
    """
    waits: list[float] = []
    spent, delay = 0.0, BACKOFF[0]
    while spent < limit - 1e-9:
        step = min(delay, limit - spent)
        waits.append(step)
        spent += step
        delay = min(delay * 2, BACKOFF_MAX)
    return tuple(waits)


def _policy(timeout: float) -> dict[str, float]:
    return {"max_retries": max(1, int(timeout / INTERVAL) - 1), "interval_start": 0,
            "interval_step": INTERVAL, "interval_max": INTERVAL}


def bound_waits(conf: Any, timeout: float) -> None:
    """Make every wait of a publish end within about *timeout* seconds.

    Settings the app gave itself are kept.
    """
    connect = min(timeout / 2, CELERY_CONNECTION_TIMEOUT)
    if conf.task_publish_retry_policy == CELERY_PUBLISH_POLICY:
        conf.task_publish_retry_policy = _policy(timeout)
    if conf.broker_connection_timeout == CELERY_CONNECTION_TIMEOUT:
        conf.broker_connection_timeout = connect
    if conf.redis_socket_connect_timeout is None:
        conf.redis_socket_connect_timeout = connect
    backend = dict(conf.result_backend_transport_options or {})
    backend.setdefault("retry_policy", _policy(timeout))
    conf.result_backend_transport_options = backend


def unreachable(exc: BaseException) -> BaseException | None:
    """The error in *exc* (or in what caused it) saying Redis could not be reached."""
    seen: BaseException | None = exc
    found = None
    while seen is not None:
        if isinstance(seen, _ERRORS):
            found = seen  # the deepest one says why
        seen = seen.__cause__ or seen.__context__
    return found


def ride_out(call: Callable[[], T], *, what: str, backoff: tuple[float, ...] | None = None,
             limit: float | None = None) -> T:
    """Make *call*, repeating it with *backoff* while Redis does not answer.

    Args:
        call: the Redis call; repeating it must be safe (the lock scripts are).
        what: what the call does, for the log ("releasing job X").
        backoff: the seconds to wait before each repeat (default :data:`BACKOFF`).
        limit: instead of *backoff*, keep trying for about *limit* seconds
            (:func:`backoff_for`).

    Raises:
        The call's own connection error once the backoff is spent.
    """
    if limit is not None:
        backoff = backoff_for(limit)
    for delay in (*(BACKOFF if backoff is None else backoff), None):
        try:
            return call()
        except OUTAGE_ERRORS as exc:
            if delay is None:
                raise
            logger.warning("Redis unreachable while %s (%r); trying again in %.2f s",
                           what, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
