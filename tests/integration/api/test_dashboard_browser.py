"""The dashboard in a real headless browser (Debian's chromium via Playwright), on a real
worker and Redis: job rows, the queued list, charts, the job page and search, the
confirmation of every destructive action, the global slot and one time format."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline import explain
from pipeline.api.app import create_app
from pipeline.app.recorder import recorder_for
from pipeline.observe.metrics import Metrics
from pipeline.runtime.services import services_for
from tests.helpers.browser import ServedApi
from tests.integration.api.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    READ,
    TOKENS,
    hold_job,
    new_user,
    wait_for,
)

#: The docs' pictures: written there only when asked (``PIPELINE_SCREENSHOTS=1``), so a
#: test run never changes a tracked file.
DOCS = Path(__file__).resolve().parents[3] / "docs"
LOCAL_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
CLOCK_12H = re.compile(r"\d{1,2}:\d\d(:\d\d)?\s?[AP]M")


class Dashboard:
    """The served API, a client on it, and pages opened with the admin token."""

    def __init__(self, browser: Any, served: ServedApi, client: TestClient) -> None:
        self.browser, self.served, self.client = browser, served, client
        self.errors: list[str] = []

    def open(self, fragment: str = "") -> Any:
        page = self.browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.goto(self.served.url + fragment)
        page.wait_for_selector("#login:not([hidden])")  # no token yet: the page asks
        page.fill("#token", ADMIN_TOKEN)
        page.click("#login button")
        page.wait_for_selector("#status:has-text('scope admin')", timeout=10_000)
        return page

    def enqueue(self, body: dict[str, Any]) -> str:
        answer = self.client.post("/api/jobs", json=body, headers=ADMIN)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


@contextlib.contextmanager
def recording(app: Any) -> Iterator[None]:
    """Write the events to the store while the test runs (``pipeline recorder``'s job)."""
    recorder = recorder_for(app, block_ms=100, consumer="dashboard-tests", linger_ms=0)
    stop = threading.Event()

    def run() -> None:
        recorder.ensure_group()
        while not stop.is_set():
            services_for(app).emitter.flush()
            recorder.run_once()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture
def dash(browser: Any, app: Any, store: str, workers: Any) -> Iterator[Dashboard]:
    api = create_app(app, tokens=TOKENS, metrics=Metrics(app, worker_refresh=2.0))
    with ServedApi(api) as served, recording(app):
        board = Dashboard(browser, served, TestClient(api))
        yield board
        assert board.errors == []


def screenshot(page: Any, name: str, tmp_path: Path) -> None:
    shot = DOCS / name if os.environ.get("PIPELINE_SCREENSHOTS") else tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")


def assert_one_time_format(page: Any) -> None:
    """Every time is local ``YYYY-MM-DD HH:MM:SS`` with UTC ISO in its tooltip; no other."""
    text = page.inner_text("body")
    assert not ISO_TIME.search(text), ISO_TIME.search(text)
    assert not CLOCK_12H.search(text), CLOCK_12H.search(text)
    shown = page.locator("time.time")
    assert shown.count() > 0
    for index in range(shown.count()):
        one = shown.nth(index)
        assert LOCAL_TIME.match(one.inner_text()), one.inner_text()
        assert ISO_TIME.match(one.get_attribute("title") or "")


def row_cells(page: Any, table: str, job_id: str) -> list[str]:
    """The cells of a job's row once the store has its task (the recorder lags a little)."""
    row = page.locator(f"#{table} tr[data-job='{job_id}']")
    row.wait_for(timeout=10_000)

    def cells() -> list[str]:
        return [text.strip() for text in row.locator("td").all_inner_texts()]

    found: list[str] = wait_for(lambda: (c := cells()) and c[1] != "-" and c, what="the row")
    return found


def test_charts_and_statistics_draw_the_jobs_that_ran(dash: Dashboard, app: Any) -> None:
    done = [dash.enqueue(hold_job(0.2)) for _ in range(4)]
    failed = dash.enqueue({"task": "lockprobes.misbehave", "args": ["raise"]})
    for job in (*done, failed):
        wait_for(lambda job=job: dash.client.get(f"/api/jobs/{job}", headers=READ).json()
                 ["state"] in ("COMPLETED", "DEAD_LETTERED"), timeout=60, what="the jobs to end")
    page = dash.open()
    for chart in ("chart-throughput", "chart-failures", "chart-wait", "chart-depth"):
        page.wait_for_selector(f"#{chart} svg text.legend")
    throughput = page.locator("#chart-throughput svg")
    assert int(throughput.get_attribute("data-points") or 0) >= 1
    assert page.locator("#chart-throughput svg polyline, #chart-throughput svg circle").count()
    assert int(page.locator("#chart-failures svg").get_attribute("data-points") or 0) >= 1
    assert int(page.locator("#chart-wait svg").get_attribute("data-points") or 0) >= 1
    finished = page.locator("#stats tbody tr", has_text="jobs finished")
    finished.wait_for()
    assert int(finished.locator("td").nth(1).inner_text()) >= 5
    page.locator("#stats tbody tr", has_text="failure rate").wait_for()
    page.locator("#audit tbody tr", has_text="completed").first.wait_for()
    assert_one_time_format(page)
    page.close()


def test_rows_show_the_job_and_cancel_asks_first_naming_what_it_kills(
        dash: Dashboard, app: Any, tmp_path: Path) -> None:
    user, project = new_user(), f"p{uuid.uuid4().hex[:6]}"
    first = dash.enqueue(hold_job(60.0, user, project=project, models=["bert-dash"]))
    wait_for(lambda: explain(first, app).status == "running", what="the first job to run")
    second = dash.enqueue(hold_job(0.0, user, project=project, priority="high"))
    wait_for(lambda: explain(second, app).status == "parked", what="the job to park")
    page = dash.open()

    running = row_cells(page, "running", first)
    assert running[:5] == [first, "lockprobes.hold", user, project, "normal"]
    assert "model:bert-dash" in running[5]
    parked = row_cells(page, "parked", second)
    assert parked[:5] == [second, "lockprobes.hold", user, project, "high"]
    assert f"waiting for user:{user}" in parked[7]

    # The global slot once, as "n of N"; each lock once with its holder.
    capacity = services_for(app).settings.capacity_global
    slots = page.inner_text("#global-slots")
    assert re.fullmatch(rf"global slots [1-9]\d* of {capacity}", slots), slots
    resources = [r.strip() for r in page.locator("#locks tbody tr td:first-child")
                 .all_inner_texts()]
    assert "global" not in resources and len(resources) == len(set(resources))
    lock = page.locator("#locks tbody tr", has_text=f"user:{user}")
    assert [t.strip() for t in lock.locator("td").all_inner_texts()][:3] == \
        [f"user:{user}", "exclusive", first]
    assert_one_time_format(page)
    page.locator("#workers td.id").first.wait_for(timeout=10_000)
    screenshot(page, "dashboard.png", tmp_path)

    # Dismissed: nothing done.
    cancel = page.locator(f"#running tr[data-job='{first}'] button[name='cancel']")
    cancel.click()
    dialog = page.locator("dialog#confirm")
    dialog.wait_for(state="visible")
    text = page.inner_text("#confirm-text")
    where = explain(first, app)
    assert text == (f"Cancel job {first[:8]}… (task lockprobes.hold, running on worker "
                    f"{where.host} (pid {where.pid}))? It will be killed.")
    page.click("#confirm-no")
    dialog.wait_for(state="hidden")
    page.wait_for_timeout(2500)
    assert explain(first, app).status == "running"
    page.keyboard.press("Escape")
    cancel.click()
    dialog.wait_for(state="visible")
    page.keyboard.press("Escape")  # Escape dismisses too
    dialog.wait_for(state="hidden")
    page.wait_for_timeout(500)
    assert explain(first, app).status == "running"

    # Accepted: the job is killed and its row goes.
    cancel.click()
    dialog.wait_for(state="visible")
    page.click("#confirm-yes")
    page.locator(f"#running tr[data-job='{first}']").wait_for(state="detached",
                                                              timeout=15_000)
    wait_for(lambda: explain(first, app).status != "running", what="the job to be killed")
    page.close()


def test_job_page_opens_from_a_row_and_shows_state_why_locks_and_history(
        dash: Dashboard, app: Any, tmp_path: Path) -> None:
    user = new_user()
    first = dash.enqueue(hold_job(30.0, user))
    wait_for(lambda: explain(first, app).status == "running", what="the first job to run")
    second = dash.enqueue(hold_job(0.0, user, priority="low"))
    wait_for(lambda: explain(second, app).status == "parked", what="the job to park")
    page = dash.open()
    page.locator(f"#parked tr[data-job='{second}'] td:nth-child(2)").click()
    page.wait_for_selector(f"#job-id:has-text('{second}')")
    assert page.is_visible("#job-page") and not page.is_visible("#overview")
    assert page.inner_text("#job-state").startswith("BLOCKED")
    assert f"waiting for user:{user}" in page.inner_text("#job-why")
    locks = page.locator("#job-locks tbody tr", has_text=f"user:{user}")
    locks.wait_for()
    assert first in locks.inner_text() and "waiting for it" in locks.inner_text()
    assert page.locator("#job-locks a.job-link", has_text=first).count() == 1
    page.locator("#job-history tbody tr", has_text="blocked").first.wait_for(timeout=10_000)
    assert_one_time_format(page)
    screenshot(page, "dashboard-job.png", tmp_path)

    page.click("#job-back")
    page.wait_for_selector("#overview:not([hidden])")
    page.locator(f"#running tr[data-job='{first}'] a.job-link").click()
    page.wait_for_selector(f"#job-id:has-text('{first}')")
    page.wait_for_selector("#job-why:has-text('It is running.')")
    assert "RUNNING" in page.inner_text("#job-state")
    page.locator("#job-locks tbody tr", has_text=f"user:{user}").wait_for()
    # Cancelled from its page, after the same question.
    page.click("#job-action button[name='cancel']")
    page.locator("dialog#confirm").wait_for(state="visible")
    assert "It will be killed." in page.inner_text("#confirm-text")
    page.click("#confirm-yes")
    wait_for(lambda: explain(first, app).status != "running", what="the job to be killed")
    wait_for(lambda: explain(second, app).status == "unknown", what="the parked job to end")
    page.close()


def test_search_opens_a_job_by_unique_prefix_and_lists_an_ambiguous_one(
        dash: Dashboard, app: Any) -> None:
    base = f"srch{uuid.uuid4().hex[:8]}-"
    alpha = dash.enqueue({**hold_job(0.0), "task_id": base + "alpha"})
    beta = dash.enqueue({**hold_job(0.0), "task_id": base + "beta"})
    for job in (alpha, beta):
        wait_for(lambda job=job: dash.client.get(f"/api/jobs/{job}", headers=READ)
                 .json()["state"] == "COMPLETED", what="the store to record the job")
    page = dash.open()
    page.fill("#search-input", base)
    page.press("#search-input", "Enter")
    page.wait_for_selector("#search-results:not([hidden])")
    assert "2 jobs start with" in page.inner_text("#search-message")
    assert page.locator("#search-matches a").all_inner_texts() == [alpha, beta]

    page.fill("#search-input", base + "al")
    page.press("#search-input", "Enter")
    page.wait_for_selector(f"#job-id:has-text('{alpha}')")
    page.wait_for_selector("#job-state:has-text('COMPLETED')")
    events = page.locator("#job-history tbody tr td:nth-child(2)")
    wait_for(lambda: {"queued", "started", "completed"} <= set(events.all_inner_texts()),
             what="the job's history")
    assert "lockprobes.hold" in page.inner_text("#job-fields")

    page.fill("#search-input", "no-such-job-" + base)
    page.press("#search-input", "Enter")
    page.wait_for_selector("#search-message:has-text('No job id starts with')")
    page.close()


def test_queued_list_pages_through_one_level_in_the_order_jobs_will_run(
        dash: Dashboard, app: Any) -> None:
    busy = [dash.enqueue(hold_job(45.0, new_user())) for _ in range(3)]
    for job in busy:  # every pool process taken: what follows waits in the broker
        wait_for(lambda job=job: explain(job, app).status == "running", what="busy jobs")
    waiting = [dash.enqueue(hold_job(0.0, f"q{n:02d}", project="queue-test", priority="low"))
               for n in range(25)]
    total = wait_for(lambda: (n := dash.client.get("/api/queued?priority=low", headers=READ)
                              .json()["total"]) >= 20 and n, what="jobs waiting")
    page = dash.open()
    try:
        page.select_option("#queued-level", "low")
        page.wait_for_selector(f"#queued-range:has-text('1 to 10 of {total}')")
        rows = page.locator("#queued tbody tr")
        assert rows.count() == 10
        first = [t.strip() for t in rows.first.locator("td").all_inner_texts()]
        skipped = len(waiting) - total  # taken by the worker's prefetch already
        assert first[:7] == ["1", waiting[skipped], "lockprobes.hold", f"q{skipped:02d}",
                             "queue-test", "low", "-"]
        page.click("#queued-next")
        page.wait_for_selector(f"#queued-range:has-text('11 to 20 of {total}')")
        assert rows.first.locator("td").first.inner_text() == "11"
        assert rows.first.get_attribute("data-job") == waiting[skipped + 10]

        # Flush asks first, naming how many jobs of which level; dismissed, nothing goes.
        page.click("#flush-slot button[name='flush']")
        page.locator("dialog#confirm").wait_for(state="visible")
        assert page.inner_text("#confirm-text").startswith(
            f"Flush priority low: cancel {total} waiting job(s)")
        page.click("#confirm-no")
        page.wait_for_timeout(1000)
        assert dash.client.get("/api/queued?priority=low", headers=READ).json()["total"] == total
        page.click("#flush-slot button[name='flush']")
        page.locator("dialog#confirm").wait_for(state="visible")
        page.click("#confirm-yes")
        page.wait_for_selector("#queued-range:has-text('none waiting')", timeout=10_000)
    finally:
        dash.client.post("/api/admin/clear", json={"priority": "low", "confirm": True},
                         headers=ADMIN)
        for job in busy:
            dash.client.post(f"/api/jobs/{job}/cancel", json={"terminate": True}, headers=ADMIN)
        page.close()
