"""When a worker stops taking new jobs, and when it takes them again.

A worker pauses while its host is over ``pipeline_load_max_cpu`` (a share of
all cores, smoothed) or ``pipeline_load_max_memory`` (percent), and resumes
only once both readings are below ``pipeline_load_resume_at`` of their limits,
so a host hovering at a limit does not flap between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.conf import Settings

#: What ``pipeline show`` says of a queued job while no worker takes jobs.
ALL_PAUSED = "waiting: every worker is over its load limit"


@dataclass(frozen=True)
class LoadLimits:
    """The limits of the gate, each a share between 0 and 1.

    Attributes:
        max_cpu: CPU share above which the worker pauses.
        max_memory: memory share above which the worker pauses.
        resume_at: share of each limit both readings must fall below to resume.
    """

    max_cpu: float
    max_memory: float
    resume_at: float

    @classmethod
    def from_settings(cls, settings: Settings) -> LoadLimits:
        """The limits the ``pipeline_load_*`` settings give."""
        return cls(settings.load_max_cpu, settings.load_max_memory / 100.0,
                   settings.load_resume_at)

    def over(self, cpu: float, memory: float) -> str:
        """Why the readings are over a limit, or "" when they are not."""
        reasons = []
        if cpu > self.max_cpu:
            reasons.append(f"CPU {cpu:.0%} of all cores > limit {self.max_cpu:.0%}")
        if memory > self.max_memory:
            reasons.append(f"memory {memory:.0%} > limit {self.max_memory:.0%}")
        return "; ".join(reasons)

    def clear(self, cpu: float, memory: float) -> bool:
        """Whether both readings are far enough below their limits to resume."""
        return (cpu < self.max_cpu * self.resume_at
                and memory < self.max_memory * self.resume_at)


@dataclass(frozen=True)
class Transition:
    """A change of the gate: ``pause`` or ``resume``, and why."""

    action: str
    reason: str


class Hysteresis:
    """The gate's state from one reading to the next.

    Attributes:
        paused: whether the readings keep the worker from taking jobs.
        reason: why, in words, as of the last transition.
    """

    def __init__(self, limits: LoadLimits) -> None:
        self.limits = limits
        self.paused = False
        self.reason = ""

    def update(self, cpu: float, memory: float) -> Transition | None:
        """Feed one reading; returns the transition it causes, if any."""
        if not self.paused:
            over = self.limits.over(cpu, memory)
            if not over:
                return None
            self.paused, self.reason = True, over
            return Transition("pause", over)
        if not self.limits.clear(cpu, memory):
            return None
        self.paused = False
        self.reason = (f"CPU {cpu:.0%}, memory {memory:.0%}: both below "
                       f"{self.limits.resume_at:.0%} of their limits")
        return Transition("resume", self.reason)


@dataclass(frozen=True)
class GateState:
    """Whether the live workers take new jobs (read from their load records).

    Attributes:
        workers: names of the live workers that publish load records.
        paused: names of those that stopped taking jobs (over a load limit).
    """

    workers: tuple[str, ...]
    paused: tuple[str, ...]

    @property
    def all_paused(self) -> bool:
        """Every live worker is over its load limit (none takes a new job)."""
        return bool(self.workers) and len(self.paused) == len(self.workers)

    @property
    def waiting_reason(self) -> str | None:
        """What a queued job waits for because of the gate, or None."""
        return ALL_PAUSED if self.all_paused else None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"workers": list(self.workers), "paused": list(self.paused),
                "all_paused": self.all_paused, "waiting_reason": self.waiting_reason}
