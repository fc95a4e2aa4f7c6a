"""The worker's load record: one typed class, one encoding, a version."""

from __future__ import annotations

import json

from pipeline.admission.agents import VERSION, AgentStatus
from pipeline.admission.load import LoadLevel, LoadReading


def record(**extra: object) -> AgentStatus:
    return AgentStatus.measured("celery@a", "a", 10, 4, 1, 2, LoadReading(0.5, 0.6, 0.5),
                                queues=("pipeline",), **extra)  # type: ignore[arg-type]


def test_record_survives_its_encoding() -> None:
    status = record(accepting=False, pause_reason="CPU 93% > 80%", paused_since=5.0)
    assert AgentStatus.decode(status.encode()) == status


def test_score_and_level_of_a_record_come_from_its_reading() -> None:
    status = record()
    assert status.score == 0.40 * 0.5 + 0.35 * 0.6 + 0.25 * 0.5
    assert status.level is LoadLevel.MODERATE
    assert status.free_slots == 2


def test_record_of_another_version_or_broken_is_skipped_not_misread() -> None:
    data = json.loads(record().encode())
    assert data["v"] == VERSION
    data["v"] = VERSION + 1
    assert AgentStatus.decode(json.dumps(data)) is None
    assert AgentStatus.decode("{not json") is None
    assert AgentStatus.decode(json.dumps({"v": VERSION, "name": "x"})) is None


def test_as_dict_is_plain_json_data() -> None:
    data = record().as_dict()
    assert data["level"] == "MODERATE"
    assert data["queues"] == ["pipeline"]
    json.dumps(data)
