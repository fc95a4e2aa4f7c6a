"""``pipeline api`` (REST API, dashboard, metrics) and ``pipeline flower``.

Both refuse to listen beyond loopback without credentials: API tokens
(``pipeline_api_tokens`` / ``pipeline_api_token_file``) or Flower's basic auth
(``pipeline_flower_basic_auth``).
"""

from __future__ import annotations

import click

from pipeline import conf
from pipeline.cli.context import get_context, load_app, redacted, reports_errors, use_broker
from pipeline.cli.output import json_lines_option, say

#: What ``pipeline api`` prints once it serves (uvicorn's own line).
API_READY = "Uvicorn running on"
FLOWER_PORT = 5555


@click.command()
@click.option("--host", default=None,
              help="Address to bind (default: pipeline_api_host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port (default: pipeline_api_port, 8000).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@json_lines_option
@reports_errors
def api(host: str | None, port: int | None, log_level: str, as_json: bool) -> None:
    """Serve the REST API, the dashboard (/) and Prometheus metrics (/metrics)."""
    from pipeline.api.server import serve

    with use_broker() as url:
        app = load_app(get_context().app_name, broker_url=url)
        settings = conf.read(app.conf)
        where = f"{host or settings.api_host}:{port if port is not None else settings.api_port}"
        say(as_json, "starting", f"pipeline api: starting on {where}", err=True, address=where,
            broker=redacted(url))
        serve(app, host, port, log_level=log_level)
        say(as_json, "stopped", "pipeline api: stopped", err=True)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=FLOWER_PORT, show_default=True)
@json_lines_option
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
@reports_errors
def flower(address: str, port: int, as_json: bool, flower_args: tuple[str, ...]) -> None:
    """Run Flower on the app, with basic auth (pipeline_flower_basic_auth) and BLOCKED reasons.

    Extra arguments go to Flower (``--url_prefix=...``).
    """
    from pipeline.runtime import flower as flower_runtime

    with use_broker() as url:
        app = load_app(get_context().app_name, broker_url=url)
        credentials = flower_runtime.check_credentials(
            address, conf.read(app.conf).flower_basic_auth)
        say(as_json, "starting", f"pipeline flower: starting on {address}:{port}", err=True,
            address=f"{address}:{port}", broker=redacted(url))
        flower_runtime.run(get_context().app_name, address, port, credentials, flower_args)
