"""Priority parsing: every accepted form, and a clear error before publishing anything else."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from pipeline.priority import Priority, level_of, parse_priority

BAD_PRIORITIES: list[Any] = ["urgent!", 12, -1, True, 3.5, None, "", [0], b"high"]
QUEUE_LISTS = [b"{pipeline}:pipeline"] + [
    f"{{pipeline}}:pipeline\x06\x16{step}".encode() for step in (3, 6, 9)]


@pytest.mark.parametrize(("value", "expected"), [
    ("critical", 0), ("HIGH", 3), (" Normal ", 6), ("low", 9),
    (Priority.HIGH, 3), (0, 0), (5, 5), (9, 9),
])
def test_accepted_priorities_map_to_redis_priority_ints(value: Any, expected: int) -> None:
    assert parse_priority(value) == expected


@pytest.mark.parametrize("value", BAD_PRIORITIES, ids=repr)
def test_bad_priority_raises_value_error_naming_value_and_accepted_ones(value: Any) -> None:
    with pytest.raises(ValueError) as caught:
        parse_priority(value)
    message = str(caught.value)
    assert repr(value) in message
    assert "priority" in message
    for accepted in ("critical", "high", "normal", "low", "0-9"):
        assert accepted in message


def test_int_priorities_run_at_the_level_kombu_floors_them_to() -> None:
    assert [level_of(n).label for n in range(10)] == (
        ["critical"] * 3 + ["high"] * 3 + ["normal"] * 3 + ["low"])


def _queued(client: redis.Redis) -> int:
    return sum(int(client.llen(key)) for key in QUEUE_LISTS)


@pytest.mark.parametrize("value", ["urgent!", 12, -1, True, 3.5], ids=repr)
def test_apply_async_with_bad_priority_raises_before_publishing(
        app: Any, redis_client: redis.Redis, value: Any) -> None:
    from tests.tasks.probes import record

    record.apply_async(("probe:unused", "good"), priority="low")
    before = _queued(redis_client)
    assert before == 1

    with pytest.raises(ValueError, match="priority"):
        record.apply_async(("probe:unused", "bad"), priority=value)
    with pytest.raises(ValueError, match="priority"):
        record.apply_async(("probe:unused", "bad"), priority=value, user="alice")

    assert _queued(redis_client) == before


@pytest.mark.parametrize(("option", "value"), [
    ("user", "ali\nce"), ("project", "p\x1fq"), ("models", ["ok", "b\x00d"]), ("user", "   "),
    ("task_id", "job\x1f1"),
], ids=repr)
def test_apply_async_with_bad_name_raises_before_publishing(
        app: Any, redis_client: redis.Redis, option: str, value: Any) -> None:
    from pipeline.errors import InvalidJobError
    from tests.tasks.probes import record

    record.apply_async(("probe:unused", "good"), priority="low")
    with pytest.raises(InvalidJobError) as caught:
        record.apply_async(("probe:unused", "bad"), **{option: value})
    message = str(caught.value)
    assert option in message and "control characters" in message
    assert _queued(redis_client) == 1
