"""``pipeline submit --agent-pool`` and what ``show`` and ``cancel`` say of a pool's job."""

from __future__ import annotations

from typing import Any

import redis

from pipeline.job.pools import pool_lists
from tests.integration.operator.conftest import invoke, invoke_json


def test_submit_to_an_agent_pool_queues_the_job_where_its_agents_claim_it(
        ops_app: Any, redis_client: redis.Redis) -> None:
    sent = invoke_json("submit", "lockprobes.hold", "--kwargs", '{"seconds": 0}',
                       "--user", "ann", "--agent-pool", "gpu")
    assert sent["agent_pool"] == "gpu"
    assert sum(int(redis_client.llen(key)) for key in pool_lists(ops_app, "gpu")) == 1
    shown = invoke_json("show", sent["job_id"])
    assert shown["where"] == "queued" and "agent pool gpu" in shown["why_not_running"]
    cancelled = invoke("cancel", sent["job_id"])
    assert cancelled.exit_code == 0, cancelled.output
    assert sum(int(redis_client.llen(key)) for key in pool_lists(ops_app, "gpu")) == 0
    assert ops_app.AsyncResult(sent["job_id"]).state == "REVOKED"


def test_a_bad_pool_name_is_refused_naming_it_and_nothing_is_published(
        ops_app: Any, redis_client: redis.Redis) -> None:
    refused = invoke("submit", "lockprobes.hold", "--agent-pool", "no:pool")
    assert refused.exit_code == 1
    assert "agent_pool='no:pool' is not accepted" in refused.output
    assert not redis_client.keys("{pipeline}:pool.*")
