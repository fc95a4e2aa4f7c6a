"""``pipeline import``: a pending-requests file becomes jobs, once, or nothing if malformed."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from pipeline.actions.importer import import_file
from pipeline.errors import InvalidJobError
from pipeline.observe import inspection
from pipeline.runtime.services import services_for
from tests.integration.operator.conftest import invoke, invoke_json, wait_for

Worker = Callable[..., AbstractContextManager[Any]]

SAMPLE: list[dict[str, Any]] = [
    {"id": "r1", "type": "service_restart", "status": "approved", "user": "alice",
     "text": "URGENT: the API is down"},
    {"id": "r2", "type": "config_change", "status": "Ready", "user": "bob", "project": "web",
     "text": "raise the upload limit", "ticket": 77},
    {"id": "r3", "type": "support_request", "status": "approved", "text": "reset",
     "priority": 9},
    {"id": "r4", "type": "service_deploy", "status": "pending_review", "text": "deploy v2"},
    {"id": "r5", "type": "support_request", "status": "completed", "text": "done already"},
    {"id": "r2", "type": "config_change", "status": "Ready", "user": "bob", "project": "web",
     "text": "raise the upload limit", "ticket": 77},
    {"id": 6, "type": "subdomain_create", "status": "approved", "text": "docs site",
     "urgent": True},
]


def write(tmp_path: Path, data: Any, name: str = "pending-requests.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def imported(app: Any) -> dict[bytes, bytes]:
    services = services_for(app)
    return dict(services.redis.hgetall(services.keys.imported))


def test_approved_requests_become_jobs_once_and_run(
        ops_app: Any, tmp_path: Path, start_worker: Worker) -> None:
    path = write(tmp_path, {"requests": SAMPLE})
    first = invoke_json("import", str(path))
    actions = {row["request_id"]: (row["action"], row["priority"]) for row in first["rows"]}
    assert actions == {"r1": ("enqueued", "critical"), "r2": ("duplicate", "high"),
                       "r3": ("enqueued", "low"), "r4": ("pending", "normal"),
                       "r5": ("completed", "normal"), "6": ("enqueued", "critical")}
    assert [row["action"] for row in first["rows"]][1] == "enqueued"  # r2's first entry
    assert first["counts"] == {"enqueued": 4, "pending": 1, "completed": 1, "duplicate": 1}
    assert inspection.queue_depth(services_for(ops_app)) == {
        "critical": 2, "high": 1, "normal": 0, "low": 1}
    assert sorted(imported(ops_app)) == [b"6", b"r1", b"r2", b"r3"]

    again = invoke_json("import", str(path))
    assert again["counts"] == {"already imported": 4, "pending": 1, "completed": 1,
                               "duplicate": 1}
    assert sum(inspection.queue_depth(services_for(ops_app)).values()) == 4

    with start_worker():
        wait_for(lambda: ops_app.AsyncResult("r2").state == "SUCCESS", what="r2 to run")
    result = ops_app.AsyncResult("r2").result
    assert result["request"] == "r2" and result["action"] == "apply the configuration change"
    detail = inspection.job_detail(services_for(ops_app), "r2")
    assert detail.result_state == "SUCCESS"


def test_the_table_lists_pending_requests_and_sums_up(ops_app: Any, tmp_path: Path) -> None:
    outcome = invoke("import", str(write(tmp_path, SAMPLE)), "--dry-run")
    assert outcome.exit_code == 0, outcome.output
    out = outcome.stdout
    assert "pending review (1): not enqueued" in out and "r4" in out
    assert "would be enqueued" in out and "urgent word 'urgent'" in out
    assert "summary" in out and "dry run: 4 request(s) would be enqueued" in out
    assert sum(inspection.queue_depth(services_for(ops_app)).values()) == 0
    assert imported(ops_app) == {}


def test_backup_copies_the_file_first(ops_app: Any, tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE[:1])
    report = invoke_json("import", str(path), "--backup")
    backup = Path(report["backup"])
    assert backup.parent == tmp_path and backup.name.startswith("pending-requests.json.bak-")
    assert backup.read_text() == path.read_text()


@pytest.mark.parametrize(("entry", "named"), [
    ({"type": "x", "status": "approved", "text": ""}, "entry 3: field 'id' is missing"),
    ({"id": "m", "type": "x", "status": "maybe", "text": ""},
     "entry 3 (id 'm'): status='maybe' is not accepted: expected one of approved, ready"),
    ({"id": "m", "type": "x", "status": "approved", "text": "", "priority": 11},
     "entry 3 (id 'm'): priority=11 is not accepted: expected an int 1-10"),
    ({"id": "m", "type": "x", "status": "approved", "text": "", "user": ""},
     "entry 3 (id 'm'): user='' is not accepted"),
    ({"id": "m", "type": "x", "status": "approved", "text": 5},
     "entry 3 (id 'm'): text=5 is not accepted: expected text"),
    ({"id": ["m"], "type": "x", "status": "approved", "text": ""},
     "entry 3: id=['m'] is not accepted"),
    ({"id": "m", "type": "", "status": "approved", "text": ""},
     "entry 3 (id 'm'): type='' is not accepted"),
    ({"id": "r1", "type": "other", "status": "approved", "text": ""},
     "entry 3 (id 'r1'): id 'r1' repeats entry 1 with different content"),
    ("just text", "entry 3: expected an object, got str"),
])
def test_a_malformed_entry_imports_nothing_and_is_named(
        ops_app: Any, tmp_path: Path, entry: Any, named: str) -> None:
    path = write(tmp_path, [SAMPLE[0], SAMPLE[2], entry])
    outcome = invoke("import", str(path))
    assert outcome.exit_code == 1
    assert outcome.stderr.startswith(f"Error: {named}"), outcome.stderr
    assert outcome.stderr.count("\n") == 1
    assert sum(inspection.queue_depth(services_for(ops_app)).values()) == 0
    assert imported(ops_app) == {}


@pytest.mark.parametrize(("text", "named"), [
    ("{not json", "is not JSON"), ('{"items": []}', "holds no requests"),
])
def test_a_file_that_is_not_a_request_list_is_refused(
        ops_app: Any, tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    outcome = invoke("import", str(path))
    assert outcome.exit_code == 1 and named in outcome.stderr


def test_a_large_file_is_published_in_batches_with_progress(
        ops_app: Any, tmp_path: Path) -> None:
    requests = [{"id": f"bulk-{n}", "type": "support_request", "status": "approved",
                 "text": "", "priority": 5} for n in range(600)]
    seen: list[tuple[int, int]] = []
    report = import_file(services_for(ops_app), write(tmp_path, requests),
                         task_name="tasks.requests.handle",
                         progress=lambda done, total: seen.append((done, total)))
    assert seen == [(500, 600), (600, 600)]
    assert report.counts == {"enqueued": 600}
    assert inspection.queue_depth(services_for(ops_app))["normal"] == 600


def test_an_unknown_handling_task_is_refused_before_anything(
        ops_app: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidJobError, match=r"task='tasks\.nope' is not registered"):
        import_file(services_for(ops_app), write(tmp_path, SAMPLE), task_name="tasks.nope")
    assert imported(ops_app) == {}
