"""kombu's Redis transport with the pipeline's two guards: set-aside and held messages.

:func:`pipeline.appsetup.install` makes it the app's ``broker_transport`` for
``redis://`` and ``rediss://`` broker URLs. It is kombu's own transport but for:

* **Items that are not messages** (:mod:`pipeline.broker.screen`): the
  channel's Redis client checks each item a ``BRPOP`` (or ``RPOP``) returns
  from a queue list before kombu decodes it; one kombu could not deliver is set
  aside (:mod:`pipeline.broker.setaside`) and the channel reads the next, so a
  stray item never stops the worker.
* **Held messages** (:mod:`pipeline.broker.qos`): renewed while the worker
  lives, not requeued while their job runs, acknowledged even after a
  reconnect.
* **Messages for the front** (:data:`pipeline.header.FRONT`): the next step of
  a workflow that holds its locks is pushed where the next worker takes it,
  the head of its queue's most urgent list, with the priority its caller gave
  it (kombu would append it to the back of its own priority's list).

Transport options (``broker_transport_options``) read besides kombu's:
``pipeline_prefix`` (the key hash tag), ``set_aside_max`` (records kept) and
``unacked_renew_interval`` (seconds; 0 = a sixth of the visibility timeout).
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

from pipeline.broker.qos import PipelineQoS
from pipeline.broker.screen import refusal
from pipeline.broker.setaside import DEFAULT_MAX, set_aside_or_log
from pipeline.header import FRONT
from pipeline.keys import Keys


class _ScreenedReplies:
    """Mixin of the channel's Redis client: items popped off a queue are screened first."""

    #: Set per channel: returns whether an item may go on to kombu.
    admit: Any = None

    def parse_response(self, connection: Any, command_name: str, **options: Any) -> Any:
        reply = super().parse_response(connection, command_name, **options)  # type: ignore[misc]
        if not reply or self.admit is None:
            return reply
        if command_name == "BRPOP":
            key, item = reply
            return reply if self.admit(key, item) else None
        if command_name == "RPOP" and isinstance(reply, bytes | str):
            return reply if self.admit("", reply) else None
        return reply


class PipelineChannel(kombu_redis.Channel):
    """kombu's Redis channel with screened queue items and :class:`PipelineQoS`."""

    QoS = PipelineQoS
    pipeline_prefix = "pipeline"
    set_aside_max = DEFAULT_MAX
    unacked_renew_interval = 0.0
    from_transport_options = (  # type: ignore[assignment]  # kombu types it as a fixed tuple
        *kombu_redis.Channel.from_transport_options,
        "pipeline_prefix", "set_aside_max", "unacked_renew_interval")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Read by _get_client, which kombu's __init__ calls.
        self._set_aside_keys: Keys | None = None
        self._last_pool: redis.ConnectionPool | None = None
        super().__init__(*args, **kwargs)
        if not self.unacked_renew_interval:
            self.unacked_renew_interval = max(float(self.visibility_timeout) / 6, 0.5)

    def _get_pool(self, asynchronous: bool = False) -> Any:
        """kombu's pool; once the connection is gone, the last one (restores and acks need it).

        When the broker connection breaks, Celery closes the kombu connection
        (dropping the transport's parameters) before it closes the channel,
        whose close then restores unacknowledged messages: kombu would fail
        there for want of parameters, and the worker would exit.
        """
        if not asynchronous and self._last_pool is not None and (
                self.connection is None or self.connection.client is None):
            return self._last_pool
        pool = super()._get_pool(asynchronous)
        if not asynchronous:
            self._last_pool = pool
        return pool

    def _get_client(self) -> Any:
        factory = super()._get_client()
        base: Any = factory.func if isinstance(factory, functools.partial) else factory
        screened = type(f"Screened{base.__name__}", (_ScreenedReplies, base),
                        {"admit": staticmethod(self._admit)})
        if isinstance(factory, functools.partial):
            return functools.partial(screened, *factory.args, **factory.keywords)
        return screened

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        """Deliver *message*; one asking for the front goes to the head of the queue."""
        headers = message.get("headers") if isinstance(message, dict) else None
        if not headers or not headers.pop(FRONT, None):
            super()._put(queue, message, **kwargs)
            return
        key = self._q_for_pri(queue, 0)  # kombu pops a list's right end: RPUSH is next
        batch = kwargs.pop("_publish_batch", None)
        if batch is not None:
            batch.add("rpush", key, dumps(message))
            return
        with self.conn_or_acquire() as client:
            client.rpush(key, dumps(message))

    @property
    def set_aside_keys(self) -> Keys:
        """The pipeline's key names (set-aside list and counts)."""
        if self._set_aside_keys is None:
            self._set_aside_keys = Keys(self.pipeline_prefix)
        return self._set_aside_keys

    def _admit(self, key: Any, item: bytes | str) -> bool:
        """Whether kombu can deliver *item* (popped off *key*); if not, it is set aside."""
        reason = refusal(item, self.decode_body)
        if reason is None:
            return True
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        queue = name.rsplit(self.sep, 1)[0] or "?"
        # A plain client: the set-aside keys carry their own hash tag, no kombu prefix.
        client = redis.Redis(connection_pool=self.pool)
        set_aside_or_log(client, self.set_aside_keys, item, queue=queue, reason=reason,
                         limit=int(self.set_aside_max))
        return False


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`PipelineChannel`."""

    Channel = PipelineChannel
