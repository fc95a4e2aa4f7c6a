"""Every route needs a valid token (401), every action the admin scope (403); nothing leaks."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from pipeline.cli.main import cli
from tests.integration.api.conftest import ADMIN, ADMIN_TOKEN, READ, READ_TOKEN

#: Served without a token: the page (no data in it), its files, the liveness probe,
#: and FastAPI's schema and docs pages.
OPEN = {"/", "/static/{name}", "/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect",
        "/redoc"}


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI schema but the open ones."""
    paths = client.get("/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, operations in paths.items() if path not in OPEN
            for method in operations]


def _url(path: str) -> str:
    return path.replace("{job_id}", str(uuid.uuid4()))


def test_every_route_but_the_open_ones_is_401_without_a_valid_token(client: TestClient) -> None:
    routes = _routes(client)
    assert len(routes) >= 20
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer not-a-token"},
                        {"Authorization": f"Basic {READ_TOKEN}"}):
            response = client.request(method, _url(path), headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"


def test_every_action_is_403_for_a_read_token_and_every_read_is_allowed(
        client: TestClient) -> None:
    for method, path in _routes(client):
        response = client.request(method, _url(path), headers=READ, json={})
        if method == "GET":
            assert response.status_code != 403, (path, response.text)
            assert response.status_code != 401
        else:
            assert response.status_code == 403, (method, path, response.text)


def test_open_routes_answer_without_a_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    page = client.get("/")
    assert page.status_code == 200 and "<script src=\"static/dashboard.js\">" in page.text
    assert client.get("/static/dashboard.js").status_code == 200
    assert client.get("/static/secrets.txt").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "pipeline"


def test_tokens_never_reach_the_logs(client: TestClient, caplog: pytest.LogCaptureFixture,
                                     ) -> None:
    caplog.set_level(logging.DEBUG)
    client.get("/api/jobs", headers={"Authorization": "Bearer wrong-" + ADMIN_TOKEN})
    client.get("/metrics", headers=READ)
    client.post("/api/jobs", headers=ADMIN, json={"task": "no.such"})
    text = caplog.text
    assert ADMIN_TOKEN not in text and READ_TOKEN not in text


def test_pipeline_api_refuses_a_public_address_without_a_token(app: Any) -> None:
    result = CliRunner().invoke(cli, ["api", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1, result.output
    assert "0.0.0.0" in result.output and "no token configured" in result.output
