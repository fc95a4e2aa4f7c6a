"""The fault suite's verdict: a job run again after a kill that came between its end and the
recording of that end is a rerun, not a job run twice; any other second finish is."""

from __future__ import annotations

import json
from pathlib import Path

from tests.faults.ledger import UNRECORDED_END_S, Ledger, verdict


def ledger(tmp_path: Path, *records: tuple[str, int, float]) -> Ledger:
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps({"id": "j", "tag": "j", "event": event, "pid": pid,
                                        "host": "h", "t": t, "attempt": 1}) + "\n"
                            for event, pid, t in records))
    return Ledger(path)


RUNS = (("start", 1, 10.0), ("end", 1, 11.0), ("start", 2, 80.0), ("end", 2, 81.0))


def test_a_second_finish_is_a_job_run_twice(tmp_path: Path) -> None:
    found = verdict(ledger(tmp_path, *RUNS), ["j"], 100.0)
    assert (found.ran_twice, found.reran_unrecorded, found.clean) == (["j"], [], False)


def test_a_kill_just_after_the_first_end_makes_it_a_rerun(tmp_path: Path) -> None:
    found = verdict(ledger(tmp_path, *RUNS), ["j"], 100.0,
                    [(frozenset({1, 7}), 11.0 + UNRECORDED_END_S / 2)])
    assert (found.ran_twice, found.reran_unrecorded, found.clean) == ([], ["j"], True)


def test_a_kill_long_after_the_end_or_of_another_process_does_not(tmp_path: Path) -> None:
    late = verdict(ledger(tmp_path, *RUNS), ["j"], 100.0, [(frozenset({1}), 13.0)])
    other = verdict(ledger(tmp_path, *RUNS), ["j"], 100.0, [(frozenset({3}), 11.1)])
    assert late.ran_twice == ["j"] and other.ran_twice == ["j"]
