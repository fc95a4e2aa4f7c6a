"""The load of a worker's host: readings, the score and its level.

A reading holds three shares between 0 and 1: CPU in use across all cores
(smoothed over a few seconds), memory in use, and the worker's queue depth
(jobs in hand per pool slot). The score weighs them 40 / 35 / 25 %, the
weights the seed's load balancer used; the level buckets the score.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import psutil

#: Weight of each share in the score.
CPU_WEIGHT = 0.40
MEMORY_WEIGHT = 0.35
QUEUE_WEIGHT = 0.25


class LoadLevel(str, Enum):
    """How loaded a worker is, from its score."""

    LOW = "LOW"
    MODERATE = "MODERATE"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


#: The lowest score of each level above LOW (a score of exactly 0.8 is CRITICAL:
#: the utilisation the allocation keeps workers under).
LEVEL_FLOORS: tuple[tuple[float, LoadLevel], ...] = (
    (0.80, LoadLevel.CRITICAL),
    (0.60, LoadLevel.HIGH),
    (0.40, LoadLevel.MODERATE),
)


def _share(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def load_score(cpu: float, memory: float, queue_depth: float) -> float:
    """The weighted score of three shares (each clamped to 0-1): 0 idle, 1 saturated."""
    return (CPU_WEIGHT * _share(cpu) + MEMORY_WEIGHT * _share(memory)
            + QUEUE_WEIGHT * _share(queue_depth))


def level_for(score: float) -> LoadLevel:
    """The level of *score*: below 0.4 LOW, below 0.6 MODERATE, below 0.8 HIGH, else CRITICAL."""
    for floor, level in LEVEL_FLOORS:
        if score >= floor:
            return level
    return LoadLevel.LOW


def queue_depth(in_hand: int, slots: int) -> float:
    """Jobs a worker holds (running or reserved) per pool slot, capped at 1."""
    if slots <= 0:
        return 1.0 if in_hand > 0 else 0.0
    return min(1.0, in_hand / slots)


@dataclass(frozen=True)
class LoadReading:
    """One reading of a worker's load, each field a share between 0 and 1.

    Attributes:
        cpu: CPU in use across all cores, smoothed.
        memory: memory in use on the host.
        queue_depth: jobs in hand per pool slot.
    """

    cpu: float
    memory: float
    queue_depth: float

    @property
    def score(self) -> float:
        """The weighted score (see :func:`load_score`)."""
        return load_score(self.cpu, self.memory, self.queue_depth)

    @property
    def level(self) -> LoadLevel:
        """The level of the score."""
        return level_for(self.score)


def _busy_and_total(times: Any) -> tuple[float, float]:
    """CPU seconds spent busy and in all, as psutil's own ``cpu_percent`` counts them."""
    total = sum(times)
    # Guest time is already counted in user and nice on Linux.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def smooth(previous: float | None, value: float, elapsed: float, smoothing: float) -> float:
    """An exponential moving average over time: *previous* moved toward *value*.

    After *smoothing* seconds of a constant value the average has covered 63 %
    of the way to it; the first value is taken as it is.
    """
    if previous is None or smoothing <= 0:
        return value
    weight = 1.0 - math.exp(-max(elapsed, 0.0) / smoothing)
    return previous + weight * (value - previous)


class HostSampler:
    """Reads the host's CPU (exponentially smoothed) and memory use with psutil.

    Args:
        smoothing: time constant of the CPU average in seconds; 0 keeps the
            last reading as it is.
        cpu_times: returns the host's CPU times (psutil's by default).
        memory_percent: returns the host's memory use in percent.
        clock: a monotonic clock.
    """

    def __init__(self, smoothing: float,
                 cpu_times: Callable[[], Any] = psutil.cpu_times,
                 memory_percent: Callable[[], float] = lambda: psutil.virtual_memory().percent,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.smoothing = smoothing
        self._cpu_times = cpu_times
        self._memory_percent = memory_percent
        self._clock = clock
        self._last_times = _busy_and_total(cpu_times())
        self._last_at = clock()
        self.cpu: float | None = None
        self.memory = memory_percent() / 100.0

    def sample(self) -> tuple[float, float]:
        """Take one reading; returns (smoothed CPU share, memory share)."""
        now = self._clock()
        busy, total = _busy_and_total(self._cpu_times())
        elapsed = total - self._last_times[1]
        if elapsed > 0:
            instant = _share((busy - self._last_times[0]) / elapsed)
            self.cpu = smooth(self.cpu, instant, now - self._last_at, self.smoothing)
            self._last_times, self._last_at = (busy, total), now
        self.memory = _share(self._memory_percent() / 100.0)
        return (0.0 if self.cpu is None else self.cpu), self.memory
