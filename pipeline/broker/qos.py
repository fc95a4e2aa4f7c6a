"""Unacknowledged messages that survive a lost connection and a dead worker.

kombu's Redis transport keeps every message a worker took but has not
acknowledged in the hash ``unacked`` (delivery tag -> message) and the sorted
set ``unacked_index`` (delivery tag -> when it was taken), both under the
``global_keyprefix``. Any worker moves a message whose entry is older than the
visibility timeout back to its queue (``restore_visible``). A worker that is
alive but holds a message longer (a long job, a countdown) would see it run
twice; a worker that died leaves its jobs waiting for the whole timeout.

:class:`PipelineQoS` changes three things:

* **Liveness, not age.** A thread of the worker's main process
  (:class:`Keeper`) renews the index entry of every message the worker still
  holds, every ``unacked_renew_interval`` seconds. The visibility timeout then
  measures how long a worker has been silent: a live worker's messages are
  never restored, however long they run or wait; a dead worker's come back
  after the timeout (a minute by default), not an hour.
* **A lost connection does not requeue running jobs.** When the broker
  connection breaks, kombu restores every unacknowledged message of the
  channel at once, including those of jobs still running in the pool, which
  would then run twice. Here only messages no process runs are restored
  (prefetched, or waiting for their countdown: Celery forgets those); a
  running job keeps its message and acknowledges it when it ends.
* **An acknowledgement that cannot be sent is not lost.** An ack (or a drop)
  that fails because Redis is unreachable is retried by the keeper until it
  goes through; a requeue that fails is left to the visibility timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)
_BROKER_DOWN = (redis.RedisError, OSError)


def _tags(requests: Any, wanted: Any = None) -> set[str]:
    """Delivery tags of the requests in one of Celery's sets (*wanted* filters them)."""
    for _ in range(5):
        try:  # the consuming thread may change the set while another thread reads it
            found = list(requests)
        except RuntimeError:
            continue
        tags = set()
        for request in found:
            tag = getattr(getattr(request, "message", None), "delivery_tag", None)
            if tag is not None and (wanted is None or wanted(request)):
                tags.add(tag)
        return tags
    return set()


def running_tags() -> set[str]:
    """Delivery tags of the jobs this worker handed to its pool (or that run in it).

    Read from Celery's worker state: empty outside a worker.
    """
    from celery.worker import state

    return _tags(state.reserved_requests, lambda r: r in state.active_requests
                 or getattr(r, "_apply_result", None) is not None)


def tracked_tags() -> set[str]:
    """Delivery tags of every job Celery's worker still tracks: reserved, running or waiting
    for its countdown. A message Celery dropped without settling it is not among them."""
    from celery.worker import state

    return (_tags(state.reserved_requests) | _tags(state.active_requests)
            | _tags(state.scheduled_requests))


class PipelineQoS(kombu_redis.QoS):
    """kombu's Redis QoS whose held messages stay visible while the worker lives."""

    def __init__(self, channel: Any, prefetch_count: int = 0) -> None:
        super().__init__(channel, prefetch_count)
        # Kept past the channel's close: the jobs it delivered may end after a
        # reconnect, and their acks must still reach Redis.
        self._client = channel._create_client()
        self._renew_every = float(channel.unacked_renew_interval or 0)
        #: Acks and drops that could not be sent (Redis unreachable).
        self._pending_drops: set[str] = set()
        #: Messages taken whose unacked entry Redis may not have written (it went
        #: down as it handed them over): tag -> entry, written by the keeper.
        self._unwritten: dict[str, str] = {}
        #: Of those, the ones to write as due at once (given back, not held).
        self._give_back: set[str] = set()
        self._guard = threading.Lock()
        #: Acks that go to Redis with the channel's next fetch (:meth:`ack`), and since when.
        self._riders: list[str] = []
        self._riders_since = 0.0

    @contextlib.contextmanager
    def pipe_or_acquire(self, pipe: Any = None, client: Any = None) -> Iterator[Any]:
        """A pipeline on the given client, else on this QoS's own client."""
        if pipe is not None:
            yield pipe
        else:
            yield (client or self._client).pipeline()

    def append(self, message: Any, delivery_tag: str) -> None:
        """Record a delivered message (in Redis too) and make sure the keeper renews it.

        A message the channel's fetch took has its record already (written in
        the same Lua call that took it, :mod:`pipeline.broker.fetch`). When
        Redis refuses the record of another (it went down right after handing
        the message over), the job still runs and the keeper writes the record
        once Redis is back: dropping the message here would lose it.
        """
        try:
            if delivery_tag == getattr(self.channel, "recorded_tag", None):
                virtual.QoS.append(self, message, delivery_tag)
            else:
                super().append(message, delivery_tag)
        except _BROKER_DOWN as exc:
            delivery = message.delivery_info
            entry = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
            with self._guard:
                self._unwritten[delivery_tag] = entry
            virtual.QoS.append(self, message, delivery_tag)
            keeper().watch(self, self._renew_every or 5.0, owed=True)
            logger.warning("message %s taken but not recorded as taken, the broker is "
                           "unreachable (%r): recorded once it is back", delivery_tag, exc)
        if self._renew_every > 0:
            keeper().watch(self, self._renew_every)

    def ack(self, delivery_tag: str) -> None:
        """Acknowledge; when Redis cannot be reached, the keeper retries it.

        When the channel's next step is a fetch sent at once (the queues hold
        more, :meth:`PipelineChannel.fetch_follows`), the ack rides with that
        fetch: the same Lua call removes the record, one round trip instead of
        two. Otherwise it is sent now.
        """
        virtual.QoS.ack(self, delivery_tag)  # first: the credit it frees decides
        self._settle_unwritten(delivery_tag, give_back=False)
        if self.channel.fetch_follows():
            with self._guard:
                if not self._riders:
                    self._riders_since = time.monotonic()
                self._riders.append(delivery_tag)
            return
        self._remove([delivery_tag], "ack")

    def riders(self) -> list[str]:
        """Take the acks waiting for the next fetch (:meth:`ack`); the caller sends them."""
        with self._guard:
            tags, self._riders = self._riders, []
        return tags

    def send_riders(self, tags: list[str] | None = None, *, older_than: float = 0.0) -> None:
        """Send acks now: *tags*, or those still waiting for a fetch (with *older_than*,
        only once the first has waited that many seconds). A send that fails is
        retried by the keeper, as any ack."""
        if tags is None:
            if not self._riders or time.monotonic() - self._riders_since < older_than:
                return
            tags = self.riders()
        if tags:
            self._remove(tags, "ack")

    def _remove(self, tags: list[str], what: str) -> None:
        """Remove the records of *tags* (acknowledged or dropped) in one round trip."""
        try:
            pipe = self._client.pipeline()
            for tag in tags:
                self._remove_from_indices(tag, pipe)
            pipe.execute()
        except _BROKER_DOWN as exc:
            self.owe(tags, exc, what)

    def owe(self, tags: list[str], exc: BaseException, what: str = "ack") -> None:
        """Removals whose fate is unknown (Redis was unreachable, or the call that carried
        them failed): the keeper sends them again (removing a record twice is harmless)."""
        self._pending_drops.update(tags)
        keeper().watch(self, self._renew_every or 5.0, owed=True)
        logger.warning("%s of message(s) %s deferred, the broker is unreachable (%r); "
                       "retried until it goes through", what, ", ".join(tags), exc)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """Requeue or drop; a requeue that cannot be done now is left to the visibility timeout."""
        if not requeue:
            self._drop(delivery_tag, "reject")
            return
        if self._settle_unwritten(delivery_tag, give_back=True):
            self._forget(delivery_tag, "given back once the broker is reachable")
        elif self.channel.closed:
            # The closed channel cannot look up its bindings any more.
            self._forget(delivery_tag, "its requeue waits for the visibility timeout")
        else:
            try:
                super().reject(delivery_tag, requeue=True)
            except _BROKER_DOWN as exc:
                self._forget(delivery_tag,
                             f"its requeue waits for the visibility timeout ({exc!r})")

    def _settle_unwritten(self, delivery_tag: str, *, give_back: bool) -> bool:
        """Settle a message whose record was never written; False if it was written."""
        if not self._unwritten:
            return False
        with self._guard:
            if delivery_tag not in self._unwritten:
                return False
            if give_back:
                self._give_back.add(delivery_tag)
            else:
                del self._unwritten[delivery_tag]
        return True

    def _drop(self, delivery_tag: str, what: str) -> None:
        # A record Redis refused is never written now; it may have been written all
        # the same (the reply was lost, not the command): it is removed like any other.
        self._settle_unwritten(delivery_tag, give_back=False)
        self._remove([delivery_tag], what)
        virtual.QoS.ack(self, delivery_tag)

    def _forget(self, delivery_tag: str, why: str) -> None:
        virtual.QoS.ack(self, delivery_tag)
        logger.warning("message %s is no longer held by this worker: %s", delivery_tag, why)

    def restore_unacked(self, client: Any = None) -> None:
        """Put back what this worker took but does not run (the channel is closing).

        Messages of jobs running in the pool stay taken: they are acknowledged
        when their job ends. One that cannot be restored now (Redis is down)
        is no longer renewed, so the visibility timeout brings it back.
        """
        self.send_riders()
        running = running_tags()
        conn = client or self._client
        for tag in list(self._delivered):
            if tag in running and tag not in self._dirty:
                continue
            self._delivered.pop(tag, None)
            if tag in self._dirty or self._settle_unwritten(tag, give_back=True):
                continue
            try:
                self.restore_by_tag(tag, client=conn)
            except Exception as exc:  # closing must never stop the worker
                logger.warning("message %s not restored now (%r): it comes back after the "
                               "visibility timeout", tag, exc)

    def held(self) -> list[str]:
        """Delivery tags this worker still has to acknowledge or reject.

        Only messages of jobs Celery still tracks: one it dropped without
        settling (its handler failed half-way) is left to the visibility
        timeout, which hands it to a worker again.
        """
        tracked = tracked_tags()
        for _ in range(5):
            try:  # the consuming thread may change both while we read
                delivered, dirty = list(self._delivered), set(self._dirty)
            except RuntimeError:
                continue
            return [tag for tag in delivered if tag not in dirty and tag in tracked]
        return []

    @property
    def owes(self) -> bool:
        """Whether writes are still owed to Redis (deferred acks, unwritten records)."""
        return bool(self._pending_drops or self._unwritten or self._riders)

    def _write_unwritten(self) -> None:
        """Write the records Redis refused; under the guard, so no ack slips in between."""
        with self._guard:
            if not self._unwritten:
                return
            entries, back = dict(self._unwritten), set(self._give_back)
            pipe = self._client.pipeline()
            now = time.time()
            for tag, entry in entries.items():
                pipe.hset(self.unacked_key, tag, entry)
                # Given back: due at once, the next look for silent workers' messages requeues it.
                pipe.zadd(self.unacked_index_key, {tag: 0 if tag in back else now})
            pipe.execute()
            for tag in entries:
                self._unwritten.pop(tag, None)
            self._give_back -= back

    def renew(self) -> int:
        """Mark every held message as taken just now, and write what Redis refused before.

        Returns:
            How many messages were renewed.
        """
        self._write_unwritten()
        # Acks wait for a fetch only while the channel's loop turns; a loop that stopped
        # turning (a consumer cancelled, a worker shutting down) does not keep them.
        self.send_riders(older_than=1.0)
        tags = self.held()
        drops = list(self._pending_drops)
        if not tags and not drops:
            return 0
        pipe = self._client.pipeline()
        if tags:
            pipe.zadd(self.unacked_index_key, dict.fromkeys(tags, time.time()), xx=True)
        for tag in drops:
            self._remove_from_indices(tag, pipe)
        pipe.execute()
        if drops:
            self._pending_drops.difference_update(drops)
            logger.info("deferred acks of %d message(s) went through", len(drops))
        return len(tags)


class Keeper:
    """The thread of a worker's main process that renews held messages (see module doc)."""

    def __init__(self) -> None:
        self._watched: weakref.WeakSet[PipelineQoS] = weakref.WeakSet()
        #: Held strongly until their owed writes went through (their channel may be gone).
        self._owed: set[PipelineQoS] = set()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self.interval = 10.0
        #: Told, at each renewal, the delivery tags this worker holds
        #: (:func:`pipeline.broker.predecessor.record`, set by the consumer).
        self.recorder: Callable[[set[str]], None] | None = None

    def watch(self, qos: PipelineQoS, interval: float, *, owed: bool = False) -> None:
        """Renew *qos*'s messages every *interval* seconds (the shortest asked for wins).

        With *owed*, *qos* is kept alive until it owes Redis nothing.
        """
        if owed:
            self._owed.add(qos)
        elif qos in self._watched and self._thread is not None:
            return
        with self._guard:
            self._watched.add(qos)
            self.interval = min(self.interval, interval) if self._thread else interval
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pipeline-unacked-keeper",
                                                daemon=True)
                self._thread.start()

    def beat(self) -> int:
        """Renew once; returns how many messages were renewed."""
        renewed = 0
        held: set[str] = set()
        for qos in list(self._watched):
            try:
                renewed += qos.renew()
            except _BROKER_DOWN as exc:
                logger.debug("renewing held messages failed (%r); retrying", exc)
            held.update(qos.held())
            if qos in self._owed and not qos.owes:
                self._owed.discard(qos)
        if self.recorder is not None:
            try:
                self.recorder(held)
            except _BROKER_DOWN as exc:
                logger.debug("recording held messages failed (%r); retrying", exc)
        return renewed

    def _run(self) -> None:
        while not self._wake.wait(self.interval):
            try:
                self.beat()
            except Exception:  # the thread must outlive any surprise
                logger.exception("renewing held messages failed")


_KEEPERS: dict[int, Keeper] = {}


def keeper() -> Keeper:
    """The keeper of this process (a new one after ``fork``)."""
    pid = os.getpid()
    found = _KEEPERS.get(pid)
    if found is None:
        _KEEPERS.clear()
        found = _KEEPERS[pid] = Keeper()
    return found
