"""The figures the benchmark reports: spreads, FIFO counts, gaps, the tables built from them."""

from __future__ import annotations

from typing import Any

import pytest

from bench import speed, summary
from bench.__main__ import _expand
from bench.lockbench import Span, started_before_earlier, waiting_gaps
from bench.stats import compare, paired_ratios, spread


def _span(started: float, ended: float, pid: int = 0) -> Span:
    return Span(started, ended, ended, pid=pid)


def test_spread_is_range_of_paired_ratios_over_their_median() -> None:
    assert spread([0.90, 1.00, 0.95]) == pytest.approx(0.10 / 0.95, abs=1e-4)


def test_comparison_with_paired_ratios_spreading_5_percent_is_not_quotable() -> None:
    result = compare({"plain": [100.0, 100.0, 100.0], "pipeline": [92.0, 95.0, 94.6]}, "jobs/s")
    assert result["spread"] == pytest.approx(0.03 / 0.946, abs=1e-4)
    assert result["quotable"] is True
    wide = compare({"plain": [100.0, 100.0, 100.0], "pipeline": [90.0, 95.0, 95.0]}, "jobs/s")
    assert wide["spread"] >= 0.05
    assert wide["quotable"] is False
    assert "do not quote" in wide["flag"]


def test_one_round_has_no_spread_and_is_never_quotable() -> None:
    result = paired_ratios([0.9], [1.0])
    assert result["spread"] is None
    assert result["quotable"] is False


def test_jobs_started_before_an_earlier_submitted_one_are_counted() -> None:
    in_order = [_span(t, t + 0.1) for t in (1.0, 2.0, 3.0, 4.0)]
    assert started_before_earlier(in_order) == 0
    # Submitted 1..5; the 4th and 5th started before the 3rd.
    jumped = [_span(t, t + 0.1) for t in (1.0, 2.0, 5.0, 3.0, 4.0)]
    assert started_before_earlier(jumped) == 2


def test_waiting_gap_counts_only_jobs_published_before_the_previous_one_ended() -> None:
    jobs = [(_span(10.0, 10.001), 0.0), (_span(10.003, 10.004), 0.0),
            # published after the previous job ended: it waited for its own arrival
            (_span(10.020, 10.021), 10.015)]
    assert waiting_gaps(jobs, per_process=False) == pytest.approx([2.0])


def test_waiting_gap_per_process_pairs_jobs_of_the_same_pool_process() -> None:
    jobs = [(_span(1.000, 1.001, pid=7), 0.0), (_span(1.0005, 1.0015, pid=8), 0.0),
            (_span(1.003, 1.004, pid=7), 0.0), (_span(1.0025, 1.0035, pid=8), 0.0)]
    assert sorted(waiting_gaps(jobs, per_process=True)) == pytest.approx([1.0, 2.0])


def test_waiting_gaps_after_the_arrivals_stopped_are_left_out() -> None:
    jobs = [(_span(1.0, 1.001), 0.0), (_span(1.003, 1.004), 0.0), (_span(1.006, 1.007), 0.0)]
    assert waiting_gaps(jobs, per_process=False, until=1.005) == pytest.approx([2.0])


def test_ratio_rows_list_every_nested_comparison_and_flag_quick_runs() -> None:
    scenarios: dict[str, Any] = {
        "locks_throughput": {"prefork": {"store_off": {
            "as_ships": {"ratio": 0.9, **paired_ratios([0.9, 0.9], [1.0, 1.0])}}}},
        "latency": {"ratio_p50": 1.2, **paired_ratios([1.2, 1.3], [1.0, 1.0])},
    }
    rows = summary.ratio_rows(scenarios, quick=False)
    assert [(r["comparison"], r["ratio"], r["quotable"]) for r in rows] == [
        ("locks_throughput.prefork.store_off.as_ships", 0.9, True), ("latency", 1.2, False)]
    assert not any(r["quotable"] for r in summary.ratio_rows(scenarios, quick=True))


def test_speed_table_judges_a_row_against_its_goal_and_reports_failed_scenarios() -> None:
    drain = {"ratio": 0.96, **paired_ratios([0.96, 0.96, 0.96], [1.0, 1.0, 1.0])}
    scenarios: dict[str, Any] = {
        "locks_throughput": {pool: {"store_off": {"as_ships": drain}} for pool in
                             ("prefork", "solo")},
        "fifo": {"error": "BenchError: worker died"},
    }
    rows = speed.table(scenarios, quick=False)
    assert [r["scenario"] for r in rows] == ["locks_throughput"] * 4 + ["fifo"]
    prefork, solo, store_on, _solo_store_on, fifo = rows
    assert (prefork["now"], prefork["met"], prefork["quotable"]) == ("0.96x", True, True)
    assert solo["met"] is True  # 0.96 >= 0.90
    assert (store_on["now"], store_on["met"]) == ("not measured", None)
    assert (fifo["now"], fifo["met"]) == ("error", None)


def test_speed_group_expands_to_its_scenarios_once() -> None:
    assert _expand(["latency", "speed"]) == list(dict.fromkeys(["latency", *speed.SCENARIOS]))
