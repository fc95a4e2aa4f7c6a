"""The gate's decisions: over a limit pauses, below the resume share resumes, no flapping."""

from __future__ import annotations

from pipeline import conf
from pipeline.admission.gate import GateState, Hysteresis, LoadLimits

LIMITS = LoadLimits.from_settings(conf.read({}))     # CPU 0.8, memory 85 %, resume at 0.9


def test_default_limits_are_the_seeds_cpu_0_8_and_memory_85_percent() -> None:
    assert (LIMITS.max_cpu, LIMITS.max_memory, LIMITS.resume_at) == (0.8, 0.85, 0.9)


def test_over_either_limit_pauses_and_says_why() -> None:
    gate = Hysteresis(LIMITS)
    assert gate.update(0.79, 0.50) is None
    pause = gate.update(0.93, 0.50)
    assert pause is not None and pause.action == "pause"
    assert pause.reason == "CPU 93% of all cores > limit 80%"
    memory = Hysteresis(LIMITS).update(0.10, 0.90)
    assert memory is not None and memory.reason == "memory 90% > limit 85%"


def test_resumes_only_below_the_resume_share_of_both_limits() -> None:
    gate = Hysteresis(LIMITS)
    gate.update(0.95, 0.5)
    assert gate.update(0.75, 0.5) is None             # below the limit, not below 0.72
    assert gate.update(0.70, 0.80) is None            # CPU clear, memory above 76.5 %
    resume = gate.update(0.70, 0.70)
    assert resume is not None and resume.action == "resume" and not gate.paused


def test_a_change_holds_for_the_dwell_time() -> None:
    gate = Hysteresis(LIMITS, dwell=3.0)
    assert gate.update(0.95, 0.5, now=10.0) is not None
    assert gate.update(0.10, 0.1, now=12.0) is None   # clear, but paused only 2 s ago
    assert gate.update(0.10, 0.1, now=13.0) is not None
    assert gate.update(0.99, 0.1, now=14.0) is None   # over again, but resumed 1 s ago
    assert gate.update(0.99, 0.1, now=16.5) is not None


def test_gate_state_reason_only_when_every_live_worker_paused() -> None:
    assert GateState((), ()).waiting_reason is None
    assert GateState(("a", "b"), ("a",)).waiting_reason is None
    assert GateState(("a",), ("a",)).waiting_reason == (
        "waiting: every worker is over its load limit")
