"""The cost table (issue 27) and the arm checks' pure parts: no Redis, no worker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import armcheck, cost
from bench.stats import compare, paired_ratios


def _drain(pipeline: list[float], celery: list[float], peer: list[float],
           guarded: list[float]) -> dict[str, Any]:
    samples = {"celery": celery, "peer": peer, "pipeline": pipeline, "guarded": guarded}
    return {"vs_celery": compare(samples, "jobs/s", base="celery", subject="pipeline"),
            "vs_peer": compare(samples, "jobs/s", base="peer", subject="pipeline"),
            "transport": compare(samples, "jobs/s", base="celery", subject="guarded")}


def _result() -> dict[str, Any]:
    drain = _drain([900.0, 910.0, 905.0], [1000.0, 1000.0, 1000.0], [700.0, 700.0, 700.0],
                   [1010.0, 1000.0, 1005.0])
    parked, ran = [500.0, 510.0, 505.0], [600.0, 600.0, 600.0]
    one = {"pipeline": {"wall_ratio": 1.3, "samples": [1.3, 1.3, 1.31]},
           "plain_retry": {"wall_ratio": 1.6}, "peer": {"wall_ratio": 1.4,
                                                         "gap_ms": {"p50": 2.0, "p99": 9.0}},
           "dramatiq": {"skipped": "Dramatiq is not installed"},
           "vs_plain_retry": {"ratio": 0.81, **paired_ratios([1.3, 1.3, 1.31], [1.6, 1.6, 1.6])},
           "vs_peer": {"ratio": 0.93, **paired_ratios([1.3, 1.3, 1.31], [1.4, 1.4, 1.4])}}
    handoff = {"parked_10": {"p50": 1.5, "p99": 4.0}, "parked_100000": {"p50": 1.6, "p99": 4.5},
               "flat": {"largest": "parked_100000", "ratio_p50": 1.067,
                        **paired_ratios([1.6, 1.6, 1.6], [1.5, 1.5, 1.5])}}
    return {"drain": {"prefork": drain, "solo": drain},
            "parking": {"park": {"median": 505.0}, "run": {"median": 600.0}, "ratio": 0.842,
                        **paired_ratios(parked, ran)},
            "one_model": one, "handoff": handoff}


def test_each_row_judges_its_own_goal_and_shows_both_baselines() -> None:
    rows = cost.table({"cost": _result()}, quick=False)
    assert [r["metric"] for r in rows] == [row.metric for row in cost.ROWS]
    vs_celery, _solo, vs_peer, _peer_solo, transport, _t_solo, parking, one, handoff = rows
    # 0.905x Celery as it ships: >= 0.85 met; 1.29x the peer: >= 1.2 met.
    assert vs_celery["met"] is True and vs_peer["met"] is True
    assert vs_celery["vs_celery"] == "0.91x (0.90, 0.91, 0.91)"
    assert vs_celery["vs_peer"] == vs_peer["vs_peer"] == "1.29x (1.29, 1.30, 1.29)"
    assert vs_celery["quotable"] is True
    assert transport["met"] is True and transport["vs_peer"] == "n/a (no locks)"
    assert parking["met"] is True  # 0.84x >= 0.8x
    assert one["met"] is True  # 1.3x serial, ahead of plain retry (Dramatiq skipped)
    assert "Dramatiq is not installed" in one["note"]
    assert handoff["met"] is True
    assert handoff["now"] == "10: 1.5 / 4.0 ms; 100,000: 1.6 / 4.5 ms"
    assert handoff["vs_peer"] == "peer's gap on one model 2.0 / 9.0 ms"


def test_a_missed_goal_is_missed_and_a_quick_run_is_never_quotable() -> None:
    result = _result()
    result["drain"]["prefork"] = _drain([800.0, 810.0, 790.0], [1000.0] * 3, [700.0] * 3,
                                        [900.0] * 3)
    result["handoff"]["parked_100000"]["p99"] = 5.0  # the goal is strictly below 5 ms
    result["one_model"]["dramatiq"] = {"wall_ratio": 1.2}
    result["one_model"]["vs_dramatiq"] = {"ratio": 1.08,
                                          **paired_ratios([1.3] * 3, [1.2] * 3)}
    rows = cost.table({"cost": result}, quick=False)
    by_metric = {r["metric"]: r for r in rows}
    assert by_metric[cost.ROWS[0].metric]["met"] is False  # 0.80x < 0.85x
    assert by_metric[cost.ROWS[4].metric]["met"] is False  # transport 0.90x < 1.0x
    assert by_metric[cost.ROWS[7].metric]["met"] is False  # behind Dramatiq
    assert by_metric[cost.ROWS[8].metric]["met"] is False
    assert not any(r["quotable"] for r in cost.table({"cost": _result()}, quick=True))


def test_a_hand_off_that_grows_with_the_parked_jobs_is_not_flat() -> None:
    result = _result()
    result["handoff"]["flat"]["ratio_p50"] = 1.6
    assert cost.table({"cost": result}, quick=False)[8]["met"] is False


def test_a_failed_or_absent_scenario() -> None:
    assert cost.table({"speed": {}}, quick=False) == []
    rows = cost.table({"cost": {"error": "BenchError: worker died"}}, quick=False)
    assert {(r["now"], r["met"]) for r in rows} == {("error", None)}
    assert "| metric | goal |" in cost.render(rows)


def test_one_round_shows_its_single_pair_and_no_spread() -> None:
    node = {"ratio": 0.9, **paired_ratios([0.9], [1.0])}
    assert cost.pairs_text(node) == "0.90x (0.90)"
    assert cost.pairs_text(None) == "-"


def test_task_events_are_told_from_other_events_by_their_routing_key() -> None:
    assert armcheck.is_task_event(b"/15.celeryev/task.succeeded", b"{}")
    assert not armcheck.is_task_event(b"/15.celeryev/worker.heartbeat", b"{}")
    body = json.dumps({"properties": {"delivery_info": {"routing_key": "task.failed"}}})
    assert armcheck.is_task_event(b"/15.celeryev", body)
    assert not armcheck.is_task_event(b"/15.celeryev", b"not json")


@pytest.mark.parametrize(("observed", "wrong"), [
    ({"task_acks_late": False, "prefetch_count": 8}, []),
    ({"task_acks_late": True, "prefetch_count": 2},
     ["task_acks_late: True != False", "prefetch_count: 2 != 8"]),
])
def test_settings_mismatches_name_the_setting_and_both_values(
        observed: dict[str, Any], wrong: list[str]) -> None:
    assert armcheck.mismatches(observed, {"task_acks_late": False, "prefetch_count": 8}) == wrong


def test_a_failed_phase_marks_only_its_own_rows() -> None:
    result = _result()
    result["parking"] = {"error": "BenchError: 3 of 10 parked"}
    rows = cost.table({"cost": result}, quick=False)
    assert [r["now"] == "error" for r in rows] == [row.phase == "parking" for row in cost.ROWS]
    assert rows[6]["note"] == "parking: BenchError: 3 of 10 parked"
