"""``--since`` values: durations back from now and ISO dates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.errors import InvalidJobError
from pipeline.observe.timewindow import parse_since
from pipeline.priority import priorities_at

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("text", "back"), [
    ("90s", timedelta(seconds=90)), ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)),
    ("7d", timedelta(days=7)), ("1w", timedelta(weeks=1)), (" 1.5H ", timedelta(hours=1.5)),
])
def test_a_duration_counts_back_from_now(text: str, back: timedelta) -> None:
    assert parse_since(text, now=NOW) == NOW - back


def test_an_iso_time_is_read_as_utc_when_naive() -> None:
    assert parse_since("2026-11-25T08:30") == datetime(2026, 11, 25, 8, 30, tzinfo=timezone.utc)
    assert parse_since("2026-11-25T08:30+01:00") == datetime(2026, 11, 25, 7, 30,
                                                             tzinfo=timezone.utc)


@pytest.mark.parametrize("text", ["yesterday", "5 minutes", "-1h", ""])
def test_anything_else_names_the_field_and_what_is_accepted(text: str) -> None:
    with pytest.raises(InvalidJobError, match=r"since=.*expected a duration back from now"):
        parse_since(text)


def test_a_level_covers_every_int_priority_that_runs_at_it() -> None:
    assert priorities_at("critical") == (0, 1, 2)
    assert priorities_at("high") == (3, 4, 5)
    assert priorities_at(7) == (6, 7, 8)
    assert priorities_at("low") == (9,)
    with pytest.raises(InvalidJobError):
        priorities_at("urgent")
