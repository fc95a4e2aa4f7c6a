"""The deployment files in ``ops/``: systemd units verify, alert rules parse, and every metric
the rules and the Grafana dashboard name is one the pipeline serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.observe.metrics import Metrics
from tests.helpers.workers import ROOT

OPS = ROOT / "ops"
UNITS = sorted((OPS / "systemd").glob("*.service"))
METRIC = re.compile(r"\b((?:celery|pipeline)_[a-z_]+)\b")
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def served_names(app: Any) -> set[str]:
    """Every sample name the API's registry and a worker's serve (counters with _total...)."""
    from pipeline.observe.metrics.workers import OwnWorker

    metrics = Metrics(app, worker_refresh=1.0)
    families = list(metrics.registry.collect()) + list(OwnWorker("w").collect())
    assert metrics.workers is not None
    families += list(metrics.workers.collect())
    names = set()
    for family in families:
        names.add(family.name)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        names.update(family.name + s for s in suffixes.get(family.type, ()))
    return names


def test_systemd_units_restart_on_failure_as_a_dedicated_user_with_the_env_file(
        tmp_path: Path) -> None:
    assert {u.stem for u in UNITS} == {"pipeline-worker", "pipeline-beat", "pipeline-recorder",
                                      "pipeline-flower", "pipeline-api", "pipeline-agent@"}
    for unit in UNITS:
        text = unit.read_text()
        # An agent (on a host of its own) has an environment file of its own.
        env = ("EnvironmentFile=/etc/pipeline/agent-%i.env" if unit.stem == "pipeline-agent@"
               else "EnvironmentFile=/etc/pipeline/pipeline.env")
        for line in ("Restart=on-failure", "User=pipeline", env):
            assert line in text, (unit.name, line)
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the units' keys were checked only")
    # verify wants ExecStart to exist: point the units at this checkout's `pipeline`.
    binary = Path(sys.executable).parent / "pipeline"
    for unit in UNITS:
        # A template is verified as one of its instances (the agent of pool prod).
        (tmp_path / unit.name.replace("@.", "@prod.")).write_text(
            unit.read_text().replace("/opt/pipeline/.venv/bin/pipeline", str(binary)))
    done = subprocess.run(["systemd-analyze", "verify", *sorted(map(str, tmp_path.iterdir()))],
                          capture_output=True, text=True, timeout=60)
    problems = [line for line in done.stderr.splitlines() if "pipeline-" in line]
    assert done.returncode == 0 and not problems, done.stderr


def test_the_agent_unit_runs_the_reference_agent_with_its_token_as_a_credential() -> None:
    text = (OPS / "systemd" / "pipeline-agent@.service").read_text()
    assert "LoadCredential=token:/etc/pipeline/agent-%i.token" in text
    assert "--token-file ${CREDENTIALS_DIRECTORY}/token" in text and "--pool %i" in text
    example = (OPS / "agent.env.example").read_text()
    names = {line.split("=", 1)[0] for line in example.splitlines()
             if line and not line.startswith("#")}
    assert names == {"PIPELINE_AGENT_API", "PIPELINE_AGENT_COMMAND"}
    assert all(f"${{{name}}}" in text or f"${name}" in text for name in names)


def test_the_example_env_file_sets_only_known_settings() -> None:
    from pipeline.conf import BY_NAME

    known = {name.upper() for name in BY_NAME} | {
        "PIPELINE_BROKER_URL", "PIPELINE_DATABASE_URL", "PIPELINE_DATA_DIR", "PIPELINE_APP",
        "PIPELINE_RESULT_BACKEND", "PIPELINE_QUEUE"}
    lines = [line for line in (OPS / "pipeline.env.example").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines
    for line in lines:
        name = line.split("=", 1)[0]
        assert name in known, name


def test_alert_rules_parse_and_name_only_served_metrics(app: Any) -> None:
    document = yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    alerts = {rule["alert"] for rule in rules}
    assert {"PipelineJobParkedTooLong", "PipelineDeadLettersGrowing", "PipelineWorkerDown",
            "PipelineLockHeldPastLease", "PipelineRecorderLagging"} <= alerts
    names = served_names(app)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert DURATION.match(rule.get("for", "0m")), rule
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["expr"]
        used = set(METRIC.findall(rule["expr"]))
        assert used and used <= names, (rule["alert"], used - names)
    if shutil.which("promtool"):
        done = subprocess.run(["promtool", "check", "rules",
                               str(OPS / "prometheus" / "alerts.yml")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_dashboard_loads_and_every_metric_it_names_is_served(app: Any) -> None:
    dashboard = json.loads((OPS / "grafana" / "pipeline-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 10
    names = served_names(app)
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used <= names, used - names
    for required in ("celery_task_succeeded_total", "pipeline_parked_jobs",
                     "pipeline_locks_held", "pipeline_lock_wait_seconds_bucket",
                     "pipeline_dead_letters", "celery_worker_up"):
        assert required in used


def test_the_metrics_reference_documents_every_served_metric(app: Any) -> None:
    from pipeline.conf import BY_NAME

    page = (ROOT / "docs" / "reference" / "metrics.md").read_text()
    # The table names some families once, then by suffix: `celery_task_sent_total`,
    # `_received_total`, ...
    documented = set(METRIC.findall(page)) | {
        f"celery_task_{suffix}" for suffix in re.findall(r"`_([a-z]+_total)`", page)}
    documented -= set(BY_NAME)   # settings named in the text
    served = served_names(app)
    families = {name for name in served if not name.endswith(("_bucket", "_count", "_sum"))}
    undocumented = {name for name in families
                    if name not in documented and f"{name}_total" not in documented}
    assert undocumented == set(), f"docs/reference/metrics.md lacks {sorted(undocumented)}"
    assert documented <= served, (
        f"docs/reference/metrics.md names metrics not served: {sorted(documented - served)}")

