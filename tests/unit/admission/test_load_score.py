"""The load score and its level, computed from given readings, match hand-computed values."""

from __future__ import annotations

from collections import namedtuple

import pytest

from pipeline.admission.load import (
    HostSampler,
    LoadLevel,
    LoadReading,
    level_for,
    load_score,
    queue_depth,
    smooth,
)

# (cpu, memory, queue depth) -> score worked out by hand: 0.40 cpu + 0.35 memory + 0.25 depth.
HAND_COMPUTED = [
    ((0.10, 0.20, 0.00), 0.04 + 0.07 + 0.0, LoadLevel.LOW),
    ((0.50, 0.60, 0.25), 0.20 + 0.21 + 0.0625, LoadLevel.MODERATE),
    ((0.80, 0.50, 0.50), 0.32 + 0.175 + 0.125, LoadLevel.HIGH),
    ((1.00, 0.90, 1.00), 0.40 + 0.315 + 0.25, LoadLevel.CRITICAL),
    ((0.00, 0.00, 0.00), 0.0, LoadLevel.LOW),
]


@pytest.mark.parametrize(("reading", "score", "level"), HAND_COMPUTED)
def test_score_and_level_of_a_reading_match_the_hand_computed_values(
        reading: tuple[float, float, float], score: float, level: LoadLevel) -> None:
    assert load_score(*reading) == pytest.approx(score)
    assert LoadReading(*reading).score == pytest.approx(score)
    assert LoadReading(*reading).level is level


@pytest.mark.parametrize(("score", "level"), [
    (0.0, LoadLevel.LOW), (0.399, LoadLevel.LOW), (0.40, LoadLevel.MODERATE),
    (0.599, LoadLevel.MODERATE), (0.60, LoadLevel.HIGH), (0.799, LoadLevel.HIGH),
    (0.80, LoadLevel.CRITICAL), (1.0, LoadLevel.CRITICAL),
])
def test_levels_change_at_0_4_0_6_and_0_8(score: float, level: LoadLevel) -> None:
    assert level_for(score) is level


def test_shares_outside_0_to_1_are_clamped_before_weighing() -> None:
    assert load_score(1.7, -0.2, 3.0) == pytest.approx(0.40 + 0.0 + 0.25)


@pytest.mark.parametrize(("in_hand", "slots", "depth"), [
    (0, 4, 0.0), (1, 4, 0.25), (4, 4, 1.0), (9, 4, 1.0), (0, 0, 0.0), (1, 0, 1.0)])
def test_queue_depth_is_jobs_in_hand_per_slot_capped_at_one(
        in_hand: int, slots: int, depth: float) -> None:
    assert queue_depth(in_hand, slots) == depth


def test_smoothing_covers_63_percent_of_a_step_after_one_time_constant() -> None:
    assert smooth(None, 0.9, 1.0, 3.0) == 0.9                 # first reading as it is
    assert smooth(0.0, 1.0, 3.0, 3.0) == pytest.approx(0.6321, abs=1e-4)
    assert smooth(0.0, 1.0, 6.0, 3.0) == pytest.approx(0.8647, abs=1e-4)
    assert smooth(0.2, 1.0, 0.5, 0.0) == 1.0                  # no smoothing


Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_host_sampler_reads_busy_share_of_all_cores_and_smooths_it() -> None:
    # Two cores over 1 s each step: 2.0 CPU-seconds in all.
    snapshots = iter([
        Times(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        Times(1.0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0),     # 1.5 of 2.0 busy: 0.75
        Times(1.0, 0, 0.5, 2.3, 0.2, 0, 0, 0, 0, 0),   # 0 of 2.0 busy (iowait is idle)
    ])
    clock = iter([0.0, 1.0, 4.0])
    sampler = HostSampler(3.0, cpu_times=lambda: next(snapshots),
                          memory_percent=lambda: 42.0, clock=lambda: next(clock))
    assert sampler.sample() == (pytest.approx(0.75), pytest.approx(0.42))
    cpu, _ = sampler.sample()
    assert cpu == pytest.approx(0.75 * (1 - 0.6321), abs=1e-3)   # 3 s later: 63 % toward 0


def test_guest_time_is_not_counted_twice() -> None:
    snapshots = iter([Times(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                      Times(1.0, 0, 0, 1.0, 0, 0, 0, 0, 1.0, 0)])  # guest is inside user
    sampler = HostSampler(0.0, cpu_times=lambda: next(snapshots), memory_percent=lambda: 0.0)
    assert sampler.sample()[0] == pytest.approx(0.5)
