"""The dashboard in a real headless browser: a parked job and its reason, cancel from the page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline import explain
from pipeline.api.app import create_app
from pipeline.observe.metrics import Metrics
from tests.helpers.browser import ServedApi
from tests.integration.api.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    TOKENS,
    hold_job,
    new_user,
    wait_for,
)

#: The README's picture: written there only when asked (``PIPELINE_SCREENSHOTS=1``),
#: so a test run never changes a tracked file.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[3] / "docs" / "dashboard.png"


def test_dashboard_shows_a_parked_job_with_its_reason_and_cancels_it(
        browser: Any, app: Any, store: str, workers: Any, tmp_path: Path) -> None:
    api = create_app(app, tokens=TOKENS, metrics=Metrics(app, worker_refresh=2.0))
    with ServedApi(api) as served:
        from fastapi.testclient import TestClient

        client = TestClient(api)
        user = new_user()
        first = client.post("/api/jobs", json=hold_job(8.0, user), headers=ADMIN).json()["id"]
        wait_for(lambda: explain(first, app).status == "running", what="the first job to run")
        second = client.post("/api/jobs", json=hold_job(0.0, user, priority="high"),
                             headers=ADMIN).json()["id"]
        wait_for(lambda: explain(second, app).status == "parked", what="the job to park")

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(served.url)
        page.wait_for_selector("#login:not([hidden])")  # no token yet: the page asks
        page.fill("#token", ADMIN_TOKEN)
        page.click("#login button")
        row = page.locator(f"#parked tr[data-job='{second}']")
        row.wait_for(timeout=10_000)
        assert f"waiting for user:{user}" in row.inner_text()
        assert "high" in row.inner_text()
        running = page.locator(f"#running tr[data-job='{first}']")
        running.wait_for(timeout=10_000)
        page.locator("#workers td.id").first.wait_for(timeout=10_000)
        page.wait_for_timeout(300)
        shot = DOCS_SCREENSHOT if os.environ.get("PIPELINE_SCREENSHOTS") else (
            tmp_path / "dashboard.png")
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes().startswith(b"\x89PNG")

        row.locator("button[name='cancel']").click()
        row.wait_for(state="detached", timeout=10_000)
        assert explain(second, app).status == "unknown"
        assert errors == []
        page.close()
