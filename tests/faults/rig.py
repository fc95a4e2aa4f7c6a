"""What every fault scenario runs on, and what it reports.

A :class:`Rig` is a private Redis (its own port and append-only file, so it
can be restarted), the app of this process pointed at it, a :class:`Fleet` of
workers and the fault log they write. A scenario breaks something and returns
a :class:`Figure`: what was broken, how many times, how many jobs, how many
were lost, ran twice or ran as two copies at once, how many lock keys were
left behind, and how long recovery took.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.faults.fleet import Fleet
from tests.faults.ledger import Ledger, Verdict, verdict
from tests.faults.netns import Hosts
from tests.faults.redisserver import PrivateRedis
from tests.helpers.apps import app_on_redis_without_store
from tests.integration.locks.support import wait_for as wait_until

__all__ = ["Figure", "Rig", "rig", "wait_until"]

LOCK_PATTERNS = ("{pipeline}:res:*", "{pipeline}:hold:*", "{pipeline}:park:*")


@dataclass
class Figure:
    """The outcome of one fault scenario (one row of ``docs/reliability.md``).

    Attributes:
        test: its number in the fault suite.
        name: a short name.
        broken: what was broken, in words.
        times: how many times it was broken.
        jobs: jobs submitted.
        lost: jobs that never finished.
        ran_twice: jobs that finished more than once (but for a rerun after a SIGKILL
            between a run's end and its recording: ``notes`` counts those).
        concurrent: jobs that ran as two copies at once.
        locks_leaked: lock keys left once everything settled.
        violations: breaks of the scenario's own invariant (overlapping holders
            of one model, a capacity exceeded, a live lease freed...).
        recovery_s: the longest time from a break to recovery (what recovery
            means is the scenario's, in ``notes``), None if not measured.
        notes: the scenario's own figures.
    """

    test: int
    name: str
    broken: str
    times: int
    jobs: int
    lost: int = 0
    ran_twice: int = 0
    concurrent: int = 0
    locks_leaked: int = 0
    violations: int = 0
    recovery_s: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """Nothing lost, run twice, run at once or leaked."""
        return not (self.lost or self.ran_twice or self.concurrent or self.locks_leaked
                    or self.violations)

    def count(self, found: Verdict) -> Figure:
        """Fill the job counts from *found*."""
        self.lost, self.ran_twice = len(found.lost), len(found.ran_twice)
        self.concurrent = len(found.concurrent_copies)
        if found.reran_unrecorded:
            self.notes["reran_after_unrecorded_end"] = len(found.reran_unrecorded)
            self.notes["reran_after_unrecorded_end_examples"] = found.reran_unrecorded[:5]
        if not found.clean:
            self.notes["examples"] = {"lost": found.lost[:5], "ran_twice": found.ran_twice[:5],
                                      "concurrent": found.concurrent_copies[:5]}
        return self

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass
class Rig:
    """A private Redis, the app pointed at it, the workers and their fault log."""

    directory: Path
    server: PrivateRedis
    fleet: Fleet
    ledger: Ledger
    app: Any

    def client(self) -> redis.Redis:
        """A client on the private Redis."""
        return self.server.client()

    def lock_keys(self) -> list[bytes]:
        """Every key that holds, parks or records a hold."""
        client = self.client()
        try:
            return [k for pattern in LOCK_PATTERNS for k in client.keys(pattern)]
        finally:
            client.close()

    def wait_finished(self, ids: list[str], timeout: float) -> None:
        """Wait until every job of *ids* has a finished run (fails with the lost ones)."""
        wanted = set(ids)
        try:
            wait_until(lambda: wanted <= self.ledger.finished_ids(), timeout,
                       f"{len(wanted)} jobs to finish")
        except AssertionError as exc:
            missing = sorted(wanted - self.ledger.finished_ids())
            raise AssertionError(f"{exc}: {len(missing)} never finished, e.g. {missing[:3]}\n"
                                 f"{self.fleet.logs()}") from None

    def verdict(self, ids: list[str]) -> Verdict:
        """What happened to the jobs of *ids*."""
        return verdict(self.ledger, ids, time.time(), self.fleet.kills)

    def settle_locks(self, timeout: float) -> int:
        """Wait (up to *timeout*) until no lock key is left; returns how many are left."""
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not self.lock_keys(), timeout, "lock keys to go")
        return len(self.lock_keys())


@contextlib.contextmanager
def rig(directory: Path, settings: Mapping[str, Any] | None = None,
        concurrency: int = 2, hosts: Hosts | None = None) -> Iterator[Rig]:
    """A :class:`Rig` for one scenario; everything it started is stopped on exit.

    With *hosts*, Redis listens on their links too and workers go to them in turn.
    """
    import tests.faults.probes  # noqa: F401 -- registers the probes on the app
    from tasks.app import app

    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "runs.jsonl"
    bind = hosts.addresses if hosts is not None else ("127.0.0.1",)
    # As in the workers (Fleet.env): the history is the event stream.
    with PrivateRedis(directory / "redis", bind=bind) as server, \
            app_on_redis_without_store(app, server.url), \
            Fleet(server.url, directory, log, settings, concurrency,
                  hosts=hosts.hosts if hosts is not None else None) as fleet:
        yield Rig(directory, server, fleet, Ledger(log), app)
