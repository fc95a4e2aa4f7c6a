"""The per-process heartbeat: renews the leases of the jobs running here.

One daemon thread per process (started on first use, so never before a
``fork``). Each beat renews every hold of this process in one Lua call and
sweeps holds whose holder died, so a crashed worker never blocks anyone longer
than its lease even when no other job asks for its resources.
"""

from __future__ import annotations

import logging
import os
import threading

from pipeline.locks.base import LockBackend

logger = logging.getLogger(__name__)


class Heartbeat:
    """Renews the leases of the holders registered with :meth:`track`."""

    def __init__(self, locks: LockBackend, interval: float) -> None:
        self.locks = locks
        self.interval = interval
        self.lost: set[str] = set()
        self._holders: dict[str, int] = {}
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def track(self, holder: str) -> None:
        """Keep *holder*'s leases alive until :meth:`untrack` (re-entrant)."""
        with self._guard:
            self._holders[holder] = self._holders.get(holder, 0) + 1
            self.lost.discard(holder)
        self.ensure_started()

    def ensure_started(self) -> None:
        """Start the thread if it is not running (it also sweeps dead holds)."""
        if self._thread is None:
            with self._guard:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="pipeline-heartbeat",
                                                    daemon=True)
                    self._thread.start()

    def untrack(self, holder: str) -> None:
        """Stop renewing *holder* (once every :meth:`track` is matched)."""
        with self._guard:
            count = self._holders.get(holder, 0) - 1
            if count > 0:
                self._holders[holder] = count
            else:
                self._holders.pop(holder, None)

    def is_lost(self, holder: str) -> bool:
        """Whether a renewal found *holder*'s lease already gone."""
        return holder in self.lost

    def beat(self) -> list[str]:
        """Renew once and sweep dead holds; returns the holders found lost."""
        with self._guard:
            holders = list(self._holders)
        lost = self.locks.renew(holders) if holders else []
        if lost:
            with self._guard:
                self.lost.update(lost)
            logger.warning("lease lost for %s: another job may now hold its resources", lost)
        self.locks.sweep()
        return lost

    def _run(self) -> None:
        while not self._wake.wait(self.interval):
            try:
                self.beat()
            except Exception:  # a Redis blip must not kill the thread
                logger.exception("lease renewal failed; retrying in %.1fs", self.interval)

    def stop(self) -> None:
        """Stop the thread (tests and process shutdown)."""
        self._wake.set()
