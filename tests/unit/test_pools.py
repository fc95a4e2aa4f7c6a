"""Publishing to an agent pool: its name, its queue, its countdown and expiry, the task option."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from pipeline import PipelineTask
from pipeline.errors import InvalidJobError
from pipeline.job import pools
from pipeline.keys import pool_of_queue, pool_queue
from pipeline.messages.header import JobHeader


@pytest.mark.parametrize("name", ["prod", "gpu-01", "a.b_c", "x" * 64])
def test_pool_names_of_letters_digits_dots_dashes_and_underscores_are_accepted(
        name: str) -> None:
    assert pools.check_pool(name) == name
    assert pool_of_queue(pool_queue(name)) == name


@pytest.mark.parametrize("name", ["", "a:b", "a b", "-lead", "x" * 65, "é", None, 3])
def test_other_pool_names_are_refused_naming_the_field_and_what_is_accepted(name: Any) -> None:
    with pytest.raises(InvalidJobError, match=r"agent_pool=.* is not accepted: expected a pool"):
        pools.check_pool(name)


def test_the_option_sends_the_job_to_its_pools_queue_and_none_to_a_worker() -> None:
    class Task:
        agent_pool = "gpu"

    options: dict[str, Any] = {}
    assert pools.pool_of(Task(), options) == "gpu" and options["queue"] == "pool.gpu"
    options = {"agent_pool": None}
    assert pools.pool_of(Task(), options) is None and "queue" not in options
    with pytest.raises(InvalidJobError, match="queue='other' is not accepted"):
        pools.pool_of(Task(), {"queue": "other"})


def test_a_countdown_eta_and_expiry_become_times_in_the_header() -> None:
    assert pools.times_of({"countdown": 5, "expires": 60}, now=100.0) == (105.0, 160.0)
    eta = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert pools.times_of({"eta": eta, "expires": eta.isoformat()}) == (eta.timestamp(),
                                                                       eta.timestamp())
    assert pools.times_of({"eta": "2030-01-01T00:00:00"})[0] == eta.timestamp()  # naive: UTC
    with pytest.raises(InvalidJobError, match="countdown='soon'"):
        pools.times_of({"countdown": "soon"})


def test_the_header_carries_a_pool_jobs_place_and_reads_it_back() -> None:
    header = JobHeader(user="a", pool="gpu", not_before=1.5, expires_at=2.25)
    assert JobHeader.decode(header.encode()) == header
    with pytest.raises(InvalidJobError, match=r"pipeline\.not_before"):
        JobHeader.decode({"version": 1, "not_before": "soon"})


def test_a_task_declaring_a_bad_pool_is_refused_when_it_is_defined() -> None:
    with pytest.raises(InvalidJobError, match="agent_pool='no pool' is not accepted"):
        type("Bad", (PipelineTask,), {"agent_pool": "no pool", "name": "bad"})
