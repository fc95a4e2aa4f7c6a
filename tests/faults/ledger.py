"""Reading the fault log: runs, lost jobs, jobs run twice, overlaps and capacity.

A *run* is one ``start`` record of a job and, if the run was not killed, the
``end`` record that the same process wrote next for the same job.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Run:
    """One run of a job (``end`` is None when the run was cut short)."""

    job_id: str
    tag: str
    pid: int
    host: str
    start: float
    end: float | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    attempt: int = 1
    redelivered: bool = False
    lost_lease: bool = False

    @property
    def finished(self) -> bool:
        """Whether the body returned."""
        return self.end is not None

    def overlaps(self, other: Run, now: float) -> bool:
        """Whether the two runs were running at the same moment (an open run lasts until *now*)."""
        return self.start < (other.end or now) and other.start < (self.end or now)


class Ledger:
    """The runs recorded in one fault log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[dict[str, Any]]:
        """Every record, in the order written."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def runs(self) -> list[Run]:
        """Every run, in start order."""
        open_runs: dict[tuple[str, int, str], Run] = {}
        done: list[Run] = []
        for rec in self.records():
            key = (rec["id"], rec["pid"], rec["host"])
            if rec["event"] == "start":
                if key in open_runs:  # the same process started the job again: the first was cut
                    done.append(open_runs.pop(key))
                open_runs[key] = Run(rec["id"], rec["tag"], rec["pid"], rec["host"], rec["t"],
                                     tokens=rec.get("tokens") or {}, attempt=rec["attempt"],
                                     redelivered=rec.get("redelivered", False))
            elif rec["event"] == "end" and key in open_runs:
                run = open_runs.pop(key)
                run.end = rec["t"]
                run.lost_lease = bool(rec.get("lost"))
                done.append(run)
        return sorted([*done, *open_runs.values()], key=lambda r: r.start)

    def by_job(self) -> dict[str, list[Run]]:
        """Runs per job id."""
        found: dict[str, list[Run]] = defaultdict(list)
        for run in self.runs():
            found[run.job_id].append(run)
        return dict(found)

    def finished_ids(self) -> set[str]:
        """Jobs that have a finished run."""
        return {run.job_id for run in self.runs() if run.finished}


@dataclass(frozen=True)
class Verdict:
    """What a fault run did to the jobs submitted."""

    submitted: int
    finished: int
    lost: list[str]
    ran_twice: list[str]
    concurrent_copies: list[str]
    #: Jobs that ran again because the scenario killed the process of a run that had
    #: ended, before the end could be recorded (see :data:`UNRECORDED_END_S`).
    reran_unrecorded: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Nothing lost, nothing finished twice, never two copies at once."""
        return not (self.lost or self.ran_twice or self.concurrent_copies)


#: Seconds after a run's end within which a SIGKILL of its process comes before the end is
#: recorded: the body has returned, but its result is not stored nor its message
#: acknowledged yet (Celery does both right after the body, in milliseconds). Nothing
#: tells the system that run finished, so the job runs again, once: at-least-once, what
#: the product promises for a crash ("running jobs finish or run again, once"). A copy
#: started after the result was stored is dropped by the product, and tested on its own.
UNRECORDED_END_S = 0.5


def _ended_unrecorded(run: Run, kills: Iterable[tuple[frozenset[int], float]]) -> bool:
    return run.end is not None and any(
        run.pid in pids and run.end <= at <= run.end + UNRECORDED_END_S for pids, at in kills)


def verdict(ledger: Ledger, submitted: Iterable[str], now: float,
            kills: Iterable[tuple[frozenset[int], float]] = ()) -> Verdict:
    """Compare what was submitted with what ran (*kills*: the SIGKILLs the scenario sent)."""
    ids, kills = list(submitted), list(kills)
    runs = ledger.by_job()
    lost = [job for job in ids if not any(r.finished for r in runs.get(job, []))]
    twice, unrecorded = [], []
    for job in ids:
        ended = [r for r in runs.get(job, []) if r.finished]
        if len(ended) > 1:
            cut = all(_ended_unrecorded(r, kills) for r in ended[:-1])
            (unrecorded if cut else twice).append(job)
    concurrent = [job for job in ids
                  if any(a.overlaps(b, now) and a.finished and b.finished
                         for a, b in itertools.combinations(runs.get(job, []), 2))]
    return Verdict(len(ids), len(ids) - len(lost), lost, twice, concurrent, unrecorded)


def overlapping(runs: list[Run], now: float) -> list[tuple[str, str]]:
    """Pairs of finished runs that overlapped in time (for jobs that must exclude each other)."""
    done = sorted((r for r in runs if r.finished), key=lambda r: r.start)
    return [(a.job_id, b.job_id) for a, b in itertools.pairwise(done) if a.overlaps(b, now)]


def peak(runs: list[Run], now: float, key: Callable[[Run], bool] = lambda r: True) -> int:
    """The most runs (of those *key* selects) running at one moment; an open run counts to *now*."""
    edges = sorted([(r.start, 1) for r in runs if key(r)]
                   + [(r.end or now, -1) for r in runs if key(r)],
                   key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most
