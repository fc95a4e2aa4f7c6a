"""kombu's Redis transport with the pipeline's two guards: set-aside and held messages.

:func:`pipeline.app.install.install` makes it the app's ``broker_transport`` for
``redis://`` and ``rediss://`` broker URLs. It is kombu's own transport but for:

* **Taking a message** (:mod:`pipeline.broker.fetch`): a worker waits on its
  queues' wake lists, not on the queue lists, and takes a message with one Lua
  call that also records it as taken, so no kill can lose it in between; every
  push of a message (publish, restore) pushes a wake token too.
* **Items that are not messages** (:mod:`pipeline.broker.screen`): each item
  taken (or returned by an ``RPOP``) is checked before kombu decodes it; one
  kombu could not deliver is set aside (:mod:`pipeline.broker.setaside`) and
  the channel takes the next, so a stray item never stops the worker.
* **Held messages** (:mod:`pipeline.broker.qos`): renewed while the worker
  lives, not requeued while their job runs, acknowledged even after a
  reconnect.
* **Parking in the fetch** (:mod:`pipeline.broker.parking`): a job whose
  resources are visibly held is parked by the call that takes its message,
  never delivered to a pool process.
* **Messages for the front** (:data:`pipeline.messages.header.FRONT`): the next step of
  a workflow that holds its locks is pushed where the next worker takes it,
  the head of its queue's most urgent list, with the priority its caller gave
  it (kombu would append it to the back of its own priority's list).

Transport options (``broker_transport_options``) read besides kombu's:
``pipeline_prefix`` (the key hash tag), ``set_aside_max`` (records kept),
``unacked_renew_interval`` (seconds; 0 = a sixth of the visibility timeout) and
``park_in_fetch`` (:func:`pipeline.broker.parking.transport_options`; empty = off).
"""

from __future__ import annotations

import functools
import threading
import time
from queue import Empty
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

from pipeline.broker import fetch, parking
from pipeline.broker.qos import PipelineQoS
from pipeline.broker.screen import screened
from pipeline.broker.setaside import DEFAULT_MAX, set_aside_or_log
from pipeline.keys import WAKE_TOKEN, Keys, pool_of_queue, wake_key
from pipeline.locks.fastcall import packed
from pipeline.locks.records import SEP
from pipeline.messages.header import FRONT, NAME

#: Items set aside in one take before the worker goes back to waiting.
_MAX_SET_ASIDE_PER_TAKE = 100
#: Fetch calls that only park, in one take, before the worker's event loop gets a
#: turn (the last call leaves a wake token: the loop comes straight back).
_MAX_PARKING_CALLS_PER_TAKE = 8


class _ScreenedReplies:
    """Mixin of the channel's Redis client: items popped off a queue (``RPOP``) are screened
    first. A worker's own takes go through :mod:`pipeline.broker.fetch`, screened there."""

    #: Set per channel: returns whether an item may go on to kombu.
    admit: Any = None

    def parse_response(self, connection: Any, command_name: str, **options: Any) -> Any:
        reply = super().parse_response(connection, command_name, **options)  # type: ignore[misc]
        if reply and self.admit is not None and command_name == "RPOP" \
                and isinstance(reply, bytes | str):
            return reply if self.admit("?", reply) else None
        return reply


class PipelineChannel(kombu_redis.Channel):
    """kombu's Redis channel with screened queue items and :class:`PipelineQoS`."""

    QoS = PipelineQoS
    pipeline_prefix = "pipeline"
    set_aside_max = DEFAULT_MAX
    unacked_renew_interval = 0.0
    #: Replicas a publish waits for (Redis ``WAIT``), and for how long (seconds); 0 = none.
    wait_replicas = 0
    wait_timeout = 0.5
    #: Parking in the fetch (:func:`pipeline.broker.parking.transport_options`); empty = off.
    park_in_fetch: Any = None
    from_transport_options = (  # type: ignore[assignment]  # kombu types it as a fixed tuple
        *kombu_redis.Channel.from_transport_options,
        "pipeline_prefix", "set_aside_max", "unacked_renew_interval", "wait_replicas",
        "wait_timeout", "park_in_fetch")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Read by _get_client, which kombu's __init__ calls.
        self._set_aside_keys: Keys | None = None
        self._last_pool: redis.ConnectionPool | None = None
        #: Queue -> whether its consumer acknowledges (kombu keeps no such record).
        self._acked: dict[str, bool] = {}
        #: The queues the outstanding wait (BRPOP on their wake lists) is for.
        self._waiting_on: list[str] = []
        self._served: dict[tuple[str, ...], fetch.Served] = {}
        self._fetcher: fetch.Fetcher | None = None
        self._plain: redis.Redis | None = None
        #: The delivery tag of the message being delivered, when the fetch recorded it as taken.
        self.recorded_tag: str | None = None
        #: The last fetch left messages in the lists: the next one is sent at once, in
        #: place of the wait on the wake lists (:meth:`_brpop_start`).
        self._ahead = False
        #: The fetch sent (its lists, the acks it carries, whether it is behind a wait)
        #: until its reply is read.
        self._sent_fetch: tuple[fetch.Served, list[str], bool] | None = None
        #: The thread that runs the channel's loop (acks from another wait for nothing).
        self._loop_thread: int | None = None
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

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        """kombu's, remembering whether the queue's consumer acknowledges."""
        self._acked[queue] = not no_ack
        self._served.clear()
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        """Deliver *message* with a wake token; one asking for the front goes to the head.

        Like kombu's, but for the token (:mod:`pipeline.broker.fetch`) and the
        front: kombu pops a list's right end, so an RPUSH onto the most urgent
        list is taken next.
        """
        headers = message.get("headers") if isinstance(message, dict) else None
        if headers and headers.pop(FRONT, None):
            push, key = "RPUSH", self._q_for_pri(queue, 0)
        else:
            push, key = "LPUSH", self._q_for_pri(
                queue, self._get_message_priority(message, reverse=False))
        expires = (getattr(self, "_expires", None) or {}).get(queue)
        commands: list[tuple[Any, ...]] = [(push, key, dumps(message)),
                                           ("LPUSH", wake_key(queue), WAKE_TOKEN)]
        delayed = self._delayed(queue, message, key)
        if delayed is not None:
            # An agent pool's job with a countdown waits in its pool's delayed set,
            # not in a list no worker holds it back from (pipeline.remote).
            commands = [delayed]
        if expires is not None:
            commands += [("PEXPIRE", name, expires)
                         for name in (*self._lists_of(queue), wake_key(queue))]
        pool, pools_key = pool_of_queue(queue), self._pools_key()
        if pool is not None and pools_key is not None:
            # The agent pool is listed for operators (show, cancel, metrics), same round trip.
            commands.append(("SADD", pools_key, pool))
        batch = kwargs.pop("_publish_batch", None)
        if batch is not None:
            for name, *args in commands:
                if name == "ZADD":  # redis-py's zadd takes a mapping
                    key, score, member = args
                    args = [key, {member: score}]
                batch.add(name.lower(), *args)
            return
        prefix = self.global_keyprefix
        prefixed = [(name, prefix + key, *rest) for name, key, *rest in commands]
        if self.wait_replicas:
            # On the same connection, after the push: the publish returns once
            # replicas have the message, so a failover cannot lose it.
            prefixed.append(("WAIT", int(self.wait_replicas),
                             max(1, int(float(self.wait_timeout) * 1000))))
        fetch.push(self.pool, prefixed)

    def _pools_key(self) -> str | None:
        """The set of agent pools (``Keys.pools``) as a name under kombu's key prefix."""
        return self._under_prefix(self.set_aside_keys.pools)

    def _under_prefix(self, full: str) -> str | None:
        prefix = self.global_keyprefix or ""
        return full[len(prefix):] if full.startswith(prefix) else None

    def _delayed(self, queue: str, message: Any, key: str) -> tuple[Any, ...] | None:
        """The ``ZADD`` keeping a pool job whose countdown runs until it is due, or None."""
        if pool_of_queue(queue) is None or not isinstance(message, dict):
            return None
        header = (message.get("headers") or {}).get(NAME)
        due = header.get("not_before") if isinstance(header, dict) else None
        name = self._under_prefix(self.set_aside_keys.delayed(queue))
        if not isinstance(due, int | float) or due <= time.time() or name is None:
            return None
        index = self._lists_of(queue).index(key) + 1
        return ("ZADD", name, int(due * 1000), f"{index}{SEP}{dumps(message)}")

    def _purge(self, queue: str) -> int:
        """kombu's purge of *queue*'s lists, and of its wake list."""
        purged = int(super()._purge(queue))
        self._drop_wake_list(queue)
        return purged

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        """kombu's delete of *queue*, and of its wake list."""
        super()._delete(queue, *args, **kwargs)
        self._drop_wake_list(queue)

    def _drop_wake_list(self, queue: str) -> None:
        with self.conn_or_acquire() as client:
            client.delete(wake_key(queue))

    def _lists_of(self, queue: str) -> list[str]:
        return [self._q_for_pri(queue, level) for level in self.priority_steps]

    def _do_restore_message(self, payload: Any, exchange: str, routing_key: str, pipe: Any,
                            leftmost: bool = False) -> None:
        """kombu's restore of a taken message to its queue, with its wake token."""
        super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)
        try:
            queues = self._lookup(exchange, routing_key)
        except Exception:  # kombu logged why it could not restore it
            return
        for queue in queues:
            pipe.lpush(wake_key(queue), WAKE_TOKEN)

    def fetch_follows(self) -> bool:
        """Whether this channel's next step is a fetch sent at once: the last one left
        messages and no wait is outstanding. Asked by :meth:`PipelineQoS.ack`, whose acks
        then ride with that fetch; only on the thread that runs the channel's loop."""
        return (self._ahead and not self._in_poll and not getattr(self, "_closing", False)
                and self._loop_thread == threading.get_ident() and bool(self.active_queues)
                and self.qos.can_consume())

    def basic_cancel(self, consumer_tag: str) -> Any:
        """kombu's; acks waiting for a fetch go now (the loop may not fetch again)."""
        found = super().basic_cancel(consumer_tag)
        self.qos.send_riders(self.qos.riders())
        return found

    def _poll_error(self, type: str, **options: Any) -> Any:
        """kombu's; a fetch sent in place of the wait is read as its reply would be."""
        if type == "BRPOP" and self._sent_fetch is not None:
            try:
                return self._brpop_read(**options)
            except Empty:
                return None
        return super()._poll_error(type, **options)

    def _brpop_start(self, timeout: Any = None) -> None:
        """Wait for a wake token of the consumed queues (kombu waits on the lists themselves).

        The fetch is sent with the wait, behind it on the same connection: Redis runs
        it the moment the wait returns (woken, or at its timeout), so the message
        comes back with the token, one round trip after the push. When the last
        fetch left messages, the fetch is sent alone, with the acks given since
        (:meth:`PipelineQoS.ack`): one round trip per message while the queues hold
        more, where kombu's wait and ack take two and the pipeline's fetch a third.
        """
        self._loop_thread = threading.get_ident()
        queues = self._queue_cycle.consume(len(self.active_queues))
        qos: PipelineQoS = self.qos
        if not queues:
            qos.send_riders(qos.riders())
            return
        self._waiting_on = list(queues)
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]  # kombu: None
        fetcher, commands, acks = self._fetcher, [], []
        if self._ahead and fetcher is not None:
            self._ahead = False
            lists, acks = self._served_lists(queues), qos.riders()
            commands.append(fetcher.command(lists, acks, ahead=True))
            self._sent_fetch = (lists, acks, False)
        else:
            # An ack waits for nothing: the wait may last until its timeout.
            qos.send_riders(qos.riders())
            wait = self.brpop_timeout if timeout is None else timeout
            command = ["BRPOP", *(wake_key(queue) for queue in queues), wait or 0]
            if self.global_keyprefix:
                command = self.client._prefix_args(command)
            commands.append(tuple(command))
            if fetcher is not None and fetcher.ready:
                lists = self._served_lists(queues)
                commands.append(fetcher.command(lists, (), ahead=False))
                self._sent_fetch = (lists, [], True)
        connection = self.client.connection
        try:
            connection.send_packed_command(
                [chunk for command in commands for chunk in packed(connection, command)])
        except self.connection_errors as exc:
            self._sent_fetch, self._in_poll = None, None  # type: ignore[assignment]
            if acks:
                qos.owe(acks, exc)
            raise

    def _brpop_read(self, **options: Any) -> bool:
        """Read the wait's reply and the fetch's, then deliver what the fetch took (or take
        the next message now, when no fetch was sent)."""
        sent, self._sent_fetch = self._sent_fetch, None
        woken, reply = None, None
        connection = self.client.connection
        try:
            if sent is None or sent[2]:
                woken = self.client.parse_response(connection, "BRPOP", **options)
            if sent is not None:
                try:
                    reply = self.client.parse_response(connection, "EVALSHA", **options)
                except self.ResponseError:
                    # The function or script is gone (Redis restarted, or flushed them):
                    # nothing was done. The fetch below loads it; the acks go now.
                    self.qos.send_riders(sent[1])
                    sent = None
        except BaseException as exc:
            # A reply left unread would be taken for the next one's: start afresh.
            connection.disconnect()
            if sent is not None and sent[1]:
                self.qos.owe(sent[1], exc)
            raise
        finally:
            self._in_poll = None  # type: ignore[assignment]  # kombu: False when idle
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()
        queues = [queue for queue in self._waiting_on if queue in self.active_queues]
        took = None if sent is None else fetch.Fetcher.read(sent[0], reply)
        if getattr(self, "_closing", False):
            # kombu reads the wait's reply as the channel closes: take nothing, and put
            # back what the fetch took.
            if took is not None:
                self._put_back(took)
            raise Empty()
        if took is not None and took.message is not None and took.message.queue not in queues:
            self._put_back(took)  # its consumer was cancelled while the fetch was out
        elif queues and self._take(queues, took):
            return True
        elif woken and not queues and (took is None or took.message is None):
            with self.conn_or_acquire() as client:  # nobody here takes its message: the token stays
                client.lpush(woken[0], woken[1])
        raise Empty()

    def _put_back(self, took: fetch.Taken) -> None:
        """Return a message a fetch took for a channel that closed before delivering it:
        to the head of its list, where it was, with its token."""
        if took.parked:
            parking.report(took.parked)
        taken = took.message
        if taken is None:
            return
        if taken.tag:
            self.qos.restore_by_tag(taken.tag, leftmost=False)
            return
        fetch.push(self.pool, [("RPUSH", taken.source, taken.item),
                               ("LPUSH", self.global_keyprefix + wake_key(taken.queue),
                                WAKE_TOKEN)])

    def _take(self, queues: list[str], took: fetch.Taken | None = None) -> bool:
        """Take the next message of *queues* as taken and deliver it; False if there is none.

        *took* is what a fetch sent at once did (:meth:`_brpop_start`), else one is
        made here. Items no consumer could read are set aside and the next one taken.
        """
        lists = self._served_lists(queues)
        fetcher = self._get_fetcher()
        parking_calls = 0
        for _ in range(_MAX_SET_ASIDE_PER_TAKE):
            if took is None:
                took = fetcher.take_or_park(lists)
            if took.parked:
                parking.report(took.parked)
            taken, more, self._ahead = took.message, took.more, took.left
            took = None
            if taken is None:
                parking_calls += 1
                if more and parking_calls < _MAX_PARKING_CALLS_PER_TAKE:
                    continue
                return False
            payload = self._admitted(taken.queue, taken.item)
            if payload is None:
                if taken.tag:
                    fetcher.forget(lists, taken.tag)
                continue
            self._queue_cycle.rotate(taken.queue)
            self.recorded_tag = taken.tag or None
            try:
                self.connection._deliver(payload, taken.queue)
            finally:
                self.recorded_tag = None
            return True
        return False

    def _served_lists(self, queues: list[str]) -> fetch.Served:
        key = tuple(queues)
        found = self._served.get(key)
        if found is None:
            lists = [(queue, self._q_for_pri(queue, level), self._acked.get(queue, True))
                     for level in self.priority_steps for queue in queues]
            found = self._served[key] = fetch.served(
                self.global_keyprefix, self.unacked_key, self.unacked_index_key, lists)
        return found

    def _get_fetcher(self) -> fetch.Fetcher:
        if self._fetcher is None:
            self._fetcher = fetch.Fetcher(self._plain_client(),
                                          parking.FetchParking.of(self.park_in_fetch))
        return self._fetcher

    def _plain_client(self) -> redis.Redis:
        """A client of the channel's pool without kombu's key prefix (the pipeline's keys
        carry their own hash tag; the fetch is given full names)."""
        if self._plain is None:
            self._plain = redis.Redis(connection_pool=self.pool)
        return self._plain

    @property
    def set_aside_keys(self) -> Keys:
        """The pipeline's key names (set-aside list and counts)."""
        if self._set_aside_keys is None:
            self._set_aside_keys = Keys(self.pipeline_prefix)
        return self._set_aside_keys

    def _admit(self, queue: str, item: bytes | str) -> bool:
        """Whether kombu can deliver *item* (taken off *queue*); if not, it is set aside."""
        return self._admitted(queue, item) is not None

    def _admitted(self, queue: str, item: bytes | str) -> dict[str, Any] | None:
        """*item* (taken off *queue*) decoded for kombu; None when kombu could not deliver
        it, and it is set aside."""
        payload, reason = screened(item, self.decode_body)
        if reason is None:
            return payload
        set_aside_or_log(self._plain_client(), self.set_aside_keys, item, queue=queue,
                         reason=reason, limit=int(self.set_aside_max))
        return None


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`PipelineChannel`."""

    Channel = PipelineChannel


class PipelineSentinelChannel(PipelineChannel, kombu_redis.SentinelChannel):
    """:class:`PipelineChannel` on the current primary of a Sentinel group.

    kombu's :class:`~kombu.transport.redis.SentinelChannel` gives the pool:
    each new connection asks the Sentinels (the ``sentinel://`` URL's hosts)
    for the primary of ``master_name``, and a connection to a server that was
    demoted is dropped, so the channel follows a failover by reconnecting.
    """

    from_transport_options = (  # type: ignore[assignment]  # kombu types it as a fixed tuple
        *PipelineChannel.from_transport_options,
        "master_name", "min_other_sentinels", "sentinel_kwargs", "sentinel_fanout_compat")


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Sentinel transport with :class:`PipelineSentinelChannel`."""

    Channel = PipelineSentinelChannel
