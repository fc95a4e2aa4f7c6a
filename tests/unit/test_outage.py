"""The worker's waits for a Redis that does not answer: backoff within the outage limit."""

from __future__ import annotations

import pytest
import redis

from pipeline.job import outage


def test_backoff_doubles_from_a_quarter_second_caps_at_four_and_adds_up_to_the_limit() -> None:
    waits = outage.backoff_for(20.0)
    assert waits[:6] == (0.25, 0.5, 1.0, 2.0, 4.0, 4.0)
    assert sum(waits) == pytest.approx(20.0)
    assert max(waits) == outage.BACKOFF_MAX


def test_ride_out_tries_again_until_redis_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outage.time, "sleep", lambda _: None)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise redis.ConnectionError("refused")
        return "done"

    assert outage.ride_out(flaky, what="test", limit=60.0) == "done"
    assert len(calls) == 4


def test_ride_out_gives_up_with_the_connection_error_past_the_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(outage.time, "sleep", slept.append)

    def down() -> None:
        raise redis.ConnectionError("refused")

    with pytest.raises(redis.ConnectionError):
        outage.ride_out(down, what="test", limit=3.0)
    assert sum(slept) == pytest.approx(3.0)


def test_ride_out_lets_other_errors_through_at_once() -> None:
    def broken() -> None:
        raise redis.ResponseError("WRONGTYPE")

    with pytest.raises(redis.ResponseError):
        outage.ride_out(broken, what="test", limit=60.0)
