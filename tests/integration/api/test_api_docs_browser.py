"""The API's documentation pages render in a real browser with nothing but the API reachable.

Chromium (Debian's, through Playwright) loads ``/docs`` and ``/redoc`` with every request
that leaves loopback aborted, as on a machine without internet.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pipeline.api.app import create_app
from pipeline.observe.metrics import Metrics
from tests.helpers.browser import ServedApi
from tests.integration.api.conftest import TOKENS

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def offline_page(browser: Any) -> tuple[Any, list[str], list[str]]:
    """A page whose requests off loopback are aborted; returns it, those URLs, page errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    blocked: list[str] = []
    errors: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname in LOOPBACK:
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, blocked, errors


def test_swagger_ui_renders_every_operation_without_internet(browser: Any, app: Any) -> None:
    api = create_app(app, tokens=TOKENS, metrics=Metrics(app, worker_refresh=0))
    with ServedApi(api) as served:
        page, blocked, errors = offline_page(browser)
        page.goto(served.url + "docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
        assert "pipeline" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector(".opblock", timeout=15_000)
        operations = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/api/jobs" in text.replace("\u200b", "") for text in operations)
        assert page.locator("button.authorize").count() == 1  # bearer tokens can be entered
        page.close()
    assert blocked == [], f"/docs asked for {blocked}"
    assert errors == []


def test_redoc_renders_the_schema_without_internet(browser: Any, app: Any) -> None:
    api = create_app(app, tokens=TOKENS, metrics=Metrics(app, worker_refresh=0))
    with ServedApi(api) as served:
        page, blocked, errors = offline_page(browser)
        page.goto(served.url + "redoc")
        heading = page.wait_for_selector("h1", timeout=15_000)
        assert heading is not None and "pipeline" in heading.inner_text()
        page.wait_for_selector(".api-content h2", timeout=15_000)   # the operations
        titles = page.locator(".api-content h2").all_inner_texts()
        assert len(titles) > 10 and any("Enqueue" in title for title in titles), titles
        page.close()
    # ReDoc tries its "API docs by Redocly" logo from its CDN and hides it when that
    # fails: the only request allowed to leave, and nothing depends on it.
    assert [url for url in blocked if "redoc.ly/redoc/logo" not in url] == []
    assert errors == []


def test_documentation_assets_are_served_from_the_package(app: Any) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(create_app(app, tokens=TOKENS, metrics=Metrics(app, worker_refresh=0)))
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn." not in html and "googleapis" not in html, html
    script = client.get("/docs-assets/swagger-ui/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert "Apache License" in client.get("/docs-assets/swagger-ui/LICENSE").text
    assert "MIT" in client.get("/docs-assets/redoc/LICENSE").text
    assert client.get("/docs-assets/redoc/../app.py").status_code == 404
    assert client.get("/docs-assets/swagger-ui/index.html").status_code == 404
