"""The recorder: from the Redis event stream to the job store, in batches.

It reads ``{pipeline}:events`` as a member of one consumer group, writes each
batch in one transaction (:mod:`pipeline.store.writer`), and acknowledges the
entries only after the commit. Nothing is lost when it or the database stops:

* while the database is down it keeps the batch, backs off and retries, and
  acknowledges nothing;
* on start it first re-reads its own pending entries (``XREADGROUP`` from id
  0), and every few seconds it takes over entries a dead recorder left pending
  (``XAUTOCLAIM``);
* a batch written twice changes nothing (see :mod:`pipeline.store.states`).

After acknowledging it trims the stream below the oldest entry not yet
recorded (``XTRIM MINID``), so the stream holds only what is still to write.

It runs as a thread inside each worker (:func:`install`) or on its own
(``pipeline recorder``); several recorders share the work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.errors import StoreError
from pipeline.messages.events import JobEvent, decode
from pipeline.store import writer
from pipeline.store.session import open_store

log = logging.getLogger(__name__)

GROUP = "pipeline-recorder"

Entry = tuple[str, dict[str, str]]


def _parse_id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class RecorderStats:
    """Counters of one recorder, for logs and the benchmark."""

    events: int = 0
    batches: int = 0
    failures: int = 0
    last_lag: float = 0.0  # seconds from an event's time to its commit


class Recorder:
    """Moves events from the stream to the store; see the module docstring.

    Args:
        client: a redis-py client created with ``decode_responses=True``.
        stream: the stream key (``Keys.events``).
        store_url: the store URL; the engine is opened on first write, in
            the thread or process that writes.
        batch_size: most entries read and written at once.
        block_ms: how long one read waits for new entries.
        claim_idle_ms: entries pending this long with another consumer are
            taken over (its recorder is presumed dead).
        linger_ms: after a batch smaller than half of *batch_size*, wait this
            long before reading again, so events are written in larger batches
            (fewer round trips and transactions per event, at most this much
            more lag).
    """

    def __init__(self, client: redis.Redis, stream: str, store_url: str | None = None, *,
                 group: str = GROUP, consumer: str | None = None, batch_size: int = 1000,
                 block_ms: int = 1000, claim_idle_ms: int = 30_000,
                 max_backoff: float = 5.0, linger_ms: int = 100) -> None:
        self.client = client
        self.stream = stream
        self.store_url = store_url
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_backoff = max_backoff
        self.linger = linger_ms / 1000.0
        self.stats = RecorderStats()
        self._next_trim = 0.0
        self._sessions: sessionmaker[Session] | None = None
        self._own_backlog = True
        self._next_claim = 0.0

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) reading from the start."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _read(self) -> list[Entry]:
        if self._own_backlog:
            # Our own entries read before a restart or a failed acknowledgement.
            entries = self._xreadgroup("0", block=None)
            if entries:
                return entries
            self._own_backlog = False
        if time.monotonic() >= self._next_claim:
            # Look for abandoned entries a few times per idle period.
            self._next_claim = time.monotonic() + self.claim_idle_ms / 1000.0 / 6
            claimed = self._claim_abandoned()
            if claimed:
                return claimed
        return self._xreadgroup(">", block=self.block_ms)

    def _xreadgroup(self, start: str, block: int | None) -> list[Entry]:
        reply: Any = self.client.xreadgroup(self.group, self.consumer, {self.stream: start},
                                            count=self.batch_size, block=block)
        if not reply:
            return []
        entries = reply[0][1]
        gone = [i for i, fields in entries if not fields]
        if gone:
            # Deleted while pending (the stream's safety cap trimmed them before they
            # were recorded): nothing is left to write, and left pending they would
            # hold back every later trim.
            log.error("%d events were trimmed from %s before they were recorded "
                      "(raise pipeline_events_maxlen)", len(gone), self.stream)
            self.client.xack(self.stream, self.group, *gone)
        return [(i, f) for i, f in entries if f]

    def _claim_abandoned(self) -> list[Entry]:
        reply: Any = self.client.xautoclaim(self.stream, self.group, self.consumer,
                                            self.claim_idle_ms, "0-0", count=self.batch_size)
        entries = [(i, f) for i, f in reply[1] if f]
        if entries:
            log.warning("recorder %s took over %d events left by a stopped recorder",
                        self.consumer, len(entries))
        return entries

    def _decode(self, entries: Sequence[Entry]) -> list[JobEvent]:
        decoded = []
        for stream_id, fields in entries:
            try:
                decoded.append(decode(stream_id, fields))
            except (TypeError, ValueError):
                log.error("event %s is malformed and is not recorded: %r", stream_id, fields)
        return decoded

    def _write(self, batch: Sequence[JobEvent]) -> None:
        if self._sessions is None:
            self._sessions = open_store(self.store_url)
        with self._sessions.begin() as session:
            writer.write(session, batch)

    def _write_until_done(self, batch: Sequence[JobEvent], stop: threading.Event) -> bool:
        delay = 0.05
        while True:
            try:
                self._write(batch)
                return True
            except (SQLAlchemyError, StoreError) as exc:
                self.stats.failures += 1
                level = logging.ERROR if self.stats.failures % 20 == 1 else logging.DEBUG
                log.log(level, "recorder cannot write %d events (retrying in %.1f s): %s",
                        len(batch), delay, exc)
                if isinstance(exc, StoreError):
                    self._sessions = None  # check the schema again next time
            if stop.wait(delay):
                return False
            delay = min(delay * 2, self.max_backoff)

    def record(self, entries: Sequence[Entry], stop: threading.Event | None = None) -> bool:
        """Write *entries*, acknowledge them and trim the stream.

        Returns:
            False if *stop* was set before the database took them (they stay
            pending and are read again).
        """
        batch = self._decode(entries)
        if batch and not self._write_until_done(batch, stop or threading.Event()):
            return False
        self.client.xack(self.stream, self.group, *[i for i, _ in entries])
        self.stats.events += len(batch)
        self.stats.batches += 1
        if batch:
            self.stats.last_lag = max(0.0, time.time() - batch[-1].time)
        # Trim once caught up (a batch that was not full), else once a second.
        if len(entries) < self.batch_size or time.monotonic() >= self._next_trim:
            self._next_trim = time.monotonic() + 1.0
            self.trim()
        return True

    def trim(self) -> None:
        """Drop every entry below the oldest one some consumer group has not yet taken.

        Every group counts, so another reader of the stream (metrics) keeps its
        entries too.
        """
        # Read the groups before their pending entries: an entry delivered in
        # between is newer than the last-delivered-id read here, so it is kept.
        groups: Any = self.client.xinfo_groups(self.stream)
        if not groups:
            return
        pipe = self.client.pipeline(transaction=False)
        for group in groups:
            pipe.xpending(self.stream, group["name"])
        floor: tuple[int, int] | None = None
        for group, pending in zip(groups, pipe.execute(), strict=True):
            ms, seq = _parse_id(group["last-delivered-id"])
            oldest = _parse_id(pending["min"]) if pending["pending"] else (ms, seq + 1)
            floor = oldest if floor is None else min(floor, oldest)
        if floor is not None:
            self.client.xtrim(self.stream, minid=f"{floor[0]}-{floor[1]}", approximate=False)

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Read and record one batch; returns how many entries it held."""
        entries = self._read()
        if entries and not self.record(entries, stop):
            self._own_backlog = True
        return len(entries)

    def run(self, stop: threading.Event) -> None:
        """Record until *stop* is set; Redis errors are retried with a backoff."""
        delay = 0.1
        while not stop.is_set():
            try:
                self.ensure_group()
                while not stop.is_set():
                    count = self.run_once(stop)
                    delay = 0.1
                    if 0 < count < self.batch_size // 2 and self.linger:
                        stop.wait(self.linger)
            except redis.RedisError as exc:
                log.warning("recorder lost Redis (retrying in %.1f s): %s", delay, exc)
            except Exception:
                log.exception("recorder failed (retrying in %.1f s)", delay)
            self._own_backlog = True
            stop.wait(delay)
            delay = min(delay * 2, self.max_backoff)


class RecorderThread(threading.Thread):
    """A :class:`Recorder` in a daemon thread, built on start by *factory*."""

    def __init__(self, factory: Callable[[], Recorder]) -> None:
        super().__init__(name="pipeline-recorder", daemon=True)
        self._factory = factory
        self.stopping = threading.Event()
        self.recorder: Recorder | None = None

    def run(self) -> None:
        """Build the recorder in this thread (so its engine is this process's) and run it."""
        self.recorder = self._factory()
        self.recorder.run(self.stopping)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the recorder to stop after its current batch and wait for it."""
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)
