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
import time

from pipeline.locks.protocols import HotPath

logger = logging.getLogger(__name__)


class Heartbeat:
    """Renews the leases of the holders registered with :meth:`track`."""

    def __init__(self, locks: HotPath, interval: float, lease: float = 0.0) -> None:
        self.locks = locks
        self.interval = interval
        self.lease = lease
        self.lost: set[str] = set()
        self._holders: dict[str, int] = {}
        #: Holder -> when its lease runs out at the latest (monotonic clock): the
        #: last renewal's start plus the lease. A process that was stopped or
        #: starved past it has lost the lease, whether a renewal ran since or not.
        self._deadline: dict[str, float] = {}
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def track(self, holder: str) -> None:
        """Keep *holder*'s leases alive until :meth:`untrack` (re-entrant)."""
        with self._guard:
            self._holders[holder] = self._holders.get(holder, 0) + 1
            self.lost.discard(holder)
            self._deadline[holder] = time.monotonic() + self.lease
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
                self._deadline.pop(holder, None)

    def is_lost(self, holder: str) -> bool:
        """Whether *holder*'s lease ran out: a renewal found it gone, or its deadline passed.

        The deadline is checked on this process's clock, so a job resumed after
        a stop (SIGSTOP, a long pause) knows at once, before the next renewal.
        """
        if holder in self.lost:
            return True
        deadline = self._deadline.get(holder)
        return bool(self.lease) and deadline is not None and time.monotonic() > deadline

    def beat(self) -> list[str]:
        """Renew once and sweep dead holds; returns the holders found lost."""
        with self._guard:
            holders = list(self._holders)
        started = time.monotonic()
        lost = self.locks.renew(holders) if holders else []
        with self._guard:
            for holder in holders:
                if holder in self._holders and holder not in lost \
                        and holder in self._deadline and not self.is_lost(holder):
                    self._deadline[holder] = started + self.lease
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
