"""A Sentinel failover under load loses no job and never lets two jobs hold one model.

Three Sentinels, a primary and a replica on loopback (``redis-server
--sentinel``); the primary SIGKILLed while jobs with locks run. The long
variant is test 18 of ``python -m bench chaos``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults import failover

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]


@pytest.mark.parametrize("wait_replicas", [0, 1])
def test_a_primary_killed_under_load_fails_over_with_every_job_done_once_and_no_overlap(
        tmp_path: Path, record_property: Callable[[str, Any], None], wait_replicas: int) -> None:
    with failover.sentinel_rig(tmp_path / "rig", wait_replicas=wait_replicas) as (rig, group):
        figure = failover.primary_failover(rig, group, jobs=12, seconds=1.5)
    record_property("figure", figure.as_dict())
    assert figure.clean, f"the failover broke a promise: {figure.as_dict()}"
    assert figure.recovery_s is not None and figure.recovery_s < 30.0


def test_check_and_status_work_through_sentinel_and_follow_the_failover(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from pipeline.runtime.redisurl import client_for
    from tests.faults.sentinelgroup import MASTER_NAME, SentinelGroup
    from tests.helpers.workers import ROOT

    def pipeline(*argv: str, master: str | None = MASTER_NAME) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PIPELINE_BROKER_URL": group.url, "PIPELINE_STORE_ENABLED": "false"}
        env.pop("PIPELINE_REDIS_MASTER_NAME", None)
        if master:
            env["PIPELINE_REDIS_MASTER_NAME"] = master
        return subprocess.run([sys.executable, "-m", "pipeline", *argv], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    with SentinelGroup(tmp_path / "sentinel") as group:
        client = client_for(group.url, MASTER_NAME, socket_timeout=5)
        client.set("{pipeline}:probe", "before")
        for round_ in range(2):
            check = pipeline("check", "--no-database")
            assert check.returncode == 0, check.stdout + check.stderr
            assert f"127.0.0.1:{group.sentinel_ports[0]}" in check.stdout
            status = pipeline("status", "--json")
            assert status.returncode == 0, status.stdout + status.stderr
            if round_ == 0:
                old = group.primary_port()
                client.execute_command("WAIT", 1, 2000)
                group.kill_primary()
                group.wait_failover(old)
        assert client.get("{pipeline}:probe") == b"before", "the client follows the new primary"
        refused = pipeline("check", "--no-database", master=None)
        assert refused.returncode != 0
        assert "PIPELINE_REDIS_MASTER_NAME" in refused.stdout + refused.stderr
