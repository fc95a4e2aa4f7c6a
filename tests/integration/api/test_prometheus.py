"""A real Prometheus scrapes the API and a worker with ``ops/prometheus/scrape.yml``; every
alert and every Grafana panel query of ``ops/`` returns data, zeros included.

Debian's ``prometheus`` package (installed with apt when missing): ``promtool check`` on
the rules and the configuration, then a live scrape every second.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import explain
from pipeline.api.app import create_app
from pipeline.locks.resources import KINDS
from pipeline.observe.metrics import Metrics
from tests.helpers import prometheus
from tests.helpers.browser import ServedApi, free_port
from tests.helpers.workers import ROOT, SubprocessWorker
from tests.integration.api.conftest import READ_TOKEN, TOKENS, new_user, wait_for

OPS = ROOT / "ops"
METRIC = re.compile(r"\b((?:celery|pipeline)_[a-z_]+)\b")


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((OPS / "grafana" / "pipeline-dashboard.json").read_text())
    return [(panel["title"], target["expr"])
            for panel in dashboard["panels"] for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def scrape_config(tmp_path: Path, api_port: int, worker_port: int) -> Path:
    """``ops/prometheus/scrape.yml`` pointed at this test's API and worker, every second."""
    scrape = yaml.safe_load((OPS / "prometheus" / "scrape.yml").read_text())
    token = tmp_path / "read-token"
    token.write_text(READ_TOKEN)
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert set(jobs) == {"pipeline-api", "pipeline-workers"}
    jobs["pipeline-api"]["static_configs"] = [{"targets": [f"127.0.0.1:{api_port}"]}]
    jobs["pipeline-api"]["authorization"]["credentials_file"] = str(token)
    jobs["pipeline-workers"]["static_configs"] = [{"targets": [f"127.0.0.1:{worker_port}"]}]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(OPS / "prometheus" / "alerts.yml")],
        "scrape_configs": scrape["scrape_configs"],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def metrics_worker(redis_url: str, tmp_path: Path) -> Iterator[tuple[SubprocessWorker, int]]:
    """A worker serving its own ``/metrics`` (``pipeline_metrics_worker_port``)."""
    port = free_port()
    with SubprocessWorker(redis_url, tmp_path, name="prom-worker", concurrency=2,
                          include=("tests.tasks.lockprobes",),
                          env={"PIPELINE_METRICS_WORKER_PORT": str(port)}) as worker:
        yield worker, port


def test_promtool_accepts_the_alert_rules_and_the_scrape_configuration(tmp_path: Path) -> None:
    prometheus.promtool("check", "rules", str(OPS / "prometheus" / "alerts.yml"))
    config = scrape_config(tmp_path, 8000, 9808)
    prometheus.promtool("check", "config", str(config))


def test_every_alert_and_panel_query_returns_data_from_a_live_scrape(
        app: Any, store: str, metrics_worker: tuple[SubprocessWorker, int],
        tmp_path: Path) -> None:
    worker, worker_port = metrics_worker
    # As deployed: workers serve their own up/active series, so the API leaves them out.
    own_port = app.conf.get("pipeline_metrics_worker_port") or 0
    app.conf.pipeline_metrics_worker_port = worker_port
    try:
        api = create_app(app, tokens=TOKENS, metrics=Metrics(app, worker_refresh=1.0))
    finally:
        app.conf.pipeline_metrics_worker_port = own_port
    with ServedApi(api) as served, prometheus.running(
            scrape_config(tmp_path, served.port, worker_port), tmp_path) as server:
        server.wait_until_up({"pipeline-api", "pipeline-workers"})
        from tests.tasks import lockprobes

        job = lockprobes.hold.apply_async(kwargs={"seconds": 2.0}, user=new_user()).id
        wait_for(lambda: explain(job, app).status == "running", what="the job to run")
        wait_for(lambda: any(s["value"][1] != "0" for s in server.query("pipeline_locks_held")),
                 timeout=15, what="Prometheus to see the job's locks")
        wait_for(lambda: explain(job, app).status == "unknown", what="the job to end")
        time.sleep(3)  # a few scrapes after the end: rates have two points and more

        held = server.query("pipeline_locks_held")
        assert {s["metric"]["kind"]: s["value"][1] for s in held} == dict.fromkeys(KINDS, "0")
        empty = [(title, expr) for title, expr in panel_queries() if not server.query(expr)]
        assert empty == [], f"Grafana panels with no data: {empty}"
        for rule in alert_rules():
            server.query(rule["expr"])  # evaluates without error
            for name in set(METRIC.findall(rule["expr"])):
                assert server.query(name), f"{rule['alert']}: no series of {name}"
        rules = server.get("/api/v1/rules")["groups"]
        loaded = {r["name"]: r["health"] for g in rules for r in g["rules"]}
        assert loaded.keys() == {r["alert"] for r in alert_rules()}
        assert set(loaded.values()) <= {"ok", "unknown"}, loaded
        # Only the worker serves its up series, under its own node name.
        up = server.query("celery_worker_up")
        assert [(s["metric"]["job"], s["value"][1]) for s in up] == [("pipeline-workers", "1")]
        assert server.query("absent(celery_worker_up == 1)") == []
        assert worker.process is not None and worker.process.poll() is None
