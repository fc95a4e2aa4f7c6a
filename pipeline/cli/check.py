"""``pipeline check``: verify the configuration, Redis and the job store's database.

Exit code 0 when nothing failed (warnings allowed), 1 otherwise; every failure
says what is wrong and how to fix it.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from pipeline import conf
from pipeline.cli.context import get_context, load_app
from pipeline.cli.output import json_option, print_json
from pipeline.errors import PipelineError
from pipeline.runtime.broker import choose_broker, describe
from pipeline.runtime.checks import FAIL, OK, WARN, CheckResult, check_database, check_redis, redact

_STYLES = {OK: "green", WARN: "yellow", FAIL: "bold red"}


def _configuration(app_name: str) -> tuple[list[CheckResult], str, str, str | None]:
    """Load the app and read its settings.

    Returns:
        The findings, the app's broker URL and its job store URL (the
        environment's when the app cannot be read), and its Sentinel group name.
    """
    try:
        fallback = (choose_broker().url, conf.store_url_from({}))
    except PipelineError as exc:
        return [CheckResult("configuration", FAIL, str(exc))], "", conf.store_url_from({}), None
    try:
        app = load_app(app_name)
        broker_url = str(app.conf.broker_url or fallback[0])
        settings = conf.read(app.conf)
    except PipelineError as exc:
        return [CheckResult("configuration", FAIL, str(exc))], *fallback, None
    except Exception as exc:  # a broken config file must be reported, not raised
        message = f"the configuration of {app_name} cannot be read: {type(exc).__name__}: {exc}"
        return [CheckResult("configuration", FAIL, message)], *fallback, None
    found = CheckResult("configuration", OK, f"app {app_name} loads; pipeline_* settings valid")
    source = CheckResult("broker", OK, f"{redact(broker_url)}, from {describe(broker_url)}")
    return [found, source], broker_url, settings.store_url, settings.master_name


def _print(results: list[CheckResult]) -> None:
    table = Table(show_header=True, header_style="bold")
    table.add_column("check")
    table.add_column("result")
    table.add_column("details", overflow="fold")
    for result in results:
        style = _STYLES[result.level]
        table.add_row(result.name, f"[{style}]{result.level}[/{style}]", result.message)
    Console().print(table)


@click.command()
@click.option("--broker", "broker_url", default=None,
              help="Redis URL to check (default: the configured broker, as the worker uses it).")
@click.option("--database", "database_url", default=None,
              help="Database URL to check (default: the job store the app is configured with).")
@click.option("--no-database", is_flag=True, help="Check Redis only.")
@json_option
def check(broker_url: str | None, database_url: str | None, no_database: bool,
          as_json: bool) -> None:
    """Check Redis (reachable, >= 6.2, never evicts) and the database (reachable, migrated).

    ``--json`` prints ``{"ok": ..., "checks": [{"name", "level", "message"}]}``; the
    exit code is the same (1 when a check failed, with one line on stderr).
    """
    results, app_broker_url, store_url, master_name = _configuration(get_context().app_name)
    if broker_url or app_broker_url:
        results += check_redis(broker_url or app_broker_url, master_name=master_name)
    if not no_database:
        results += check_database(database_url or store_url)
    failed = [r for r in results if r.failed]
    if as_json:
        print_json({"ok": not failed, "warnings": sum(r.level == WARN for r in results),
                    "checks": [{"name": r.name, "level": r.level, "message": r.message}
                               for r in results]})
    else:
        _print(results)
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed: "
                                   + "; ".join(r.message for r in failed))
    if as_json:
        return
    click.echo("pipeline check: all good" if all(r.level == OK for r in results)
               else "pipeline check: passed with warnings")
