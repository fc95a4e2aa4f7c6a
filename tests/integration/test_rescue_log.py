"""A message rescued from a silent worker is logged at INFO with its job id and task."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis

from pipeline.broker.rescue import rescue_silent

QUEUE = "pipeline"


def test_a_rescued_message_is_logged_with_its_job(
        app: Any, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    from tests.tasks.probes import record

    result = record.apply_async(("probe:rescue", "a"))
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        channel._acked[QUEUE] = True
        channel._served.clear()
        taken = channel._get_fetcher().take(channel._served_lists([QUEUE]))
        assert taken is not None
        timeout = float(channel.visibility_timeout)
    # The worker that took it died: once it counts as silent, it is given back.
    redis_client.zadd("{pipeline}:unacked_index", {taken.tag: 0})
    with caplog.at_level(logging.INFO, logger="pipeline.broker.rescue"):
        assert rescue_silent(app) == 1
    assert [r.getMessage() for r in caplog.records if r.name == "pipeline.broker.rescue"] == [
        f"job {result.id} (tests.tasks.probes.record) rescued: its worker was silent past "
        f"the visibility timeout ({timeout:g} s); its message is back in its queue"]
