"""A publisher facing a Redis that does not answer: a bounded wait, a clear error.

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

import socket
from typing import Any

import redis
from kombu.exceptions import OperationalError

#: Seconds between two tries.
INTERVAL = 0.5
#: Celery's own defaults: a value still equal to them was not set by the app.
CELERY_PUBLISH_POLICY = {"max_retries": 3, "interval_start": 0, "interval_max": 1,
                         "interval_step": 0.2}
CELERY_CONNECTION_TIMEOUT = 4.0
_ERRORS = (OperationalError, redis.ConnectionError, redis.TimeoutError, ConnectionError,
           socket.timeout, OSError)


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
