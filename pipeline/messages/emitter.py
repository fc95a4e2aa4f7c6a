"""A per-process buffer for events written from Python on the publish path.

Publishing a job must cost one Redis round trip, like plain Celery. Its
``queued`` event is therefore appended to a buffer that a daemon thread
flushes within a few milliseconds, many events per pipelined round trip.
The buffer is flushed at exit; a process killed with ``kill -9`` can lose the
last few milliseconds of ``queued`` events, which the store then learns from
the job's ``started`` event (it carries the publish time).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from typing import Any

from pipeline.messages.events import encode

logger = logging.getLogger(__name__)


class BufferedEmitter:
    """Appends events to the stream in batches from a background thread."""

    def __init__(self, client: Any, stream: str, maxlen: int, *, delay: float = 0.002,
                 batch: int = 500) -> None:
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self.delay = delay
        self.batch = batch
        self._pending: deque[dict[str, str]] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        atexit.register(self.flush)

    def add(self, event_type: str, job_id: str, detail: dict[str, Any],
            time_ms: int | None = None) -> None:
        """Queue one event (of *time_ms*, default now); it reaches the stream within ms."""
        self._pending.append(encode(event_type, job_id, detail, time_ms))
        if self._thread is None:
            self._start()
        if not self._wake.is_set():
            self._wake.set()

    def flush(self) -> int:
        """Write everything buffered now; returns how many events were written."""
        if os.getpid() != self._pid:
            return 0
        written = 0
        with self._lock:
            while self._pending:
                pipe = self.client.pipeline(transaction=False)
                count = 0
                while self._pending and count < self.batch:
                    pipe.xadd(self.stream, self._pending.popleft(), maxlen=self.maxlen,
                              approximate=True)
                    count += 1
                pipe.execute()
                written += count
        return written

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pipeline-events",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            # Let a burst of publishes share one round trip: not woken early by
            # each new event, so the events of the burst gather meanwhile.
            time.sleep(self.delay)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a Redis blip must not kill the thread; events stay queued
                logger.exception("writing queued events failed; retrying")
                self._wake.set()
                threading.Event().wait(0.5)
