"""The ``pipeline`` command (also ``celery pipeline``): one module per command group.

Commands: ``up``, ``worker``, ``beat`` (:mod:`pipeline.cli.run`), ``demo``
(:mod:`pipeline.cli.demo`), ``check`` (:mod:`pipeline.cli.check`), ``show JOB``
``db`` (:mod:`pipeline.cli.db`), ``recorder`` (:mod:`pipeline.cli.recorder`), ``api``
and ``flower`` (:mod:`pipeline.cli.serve`) when installed.
"""

from __future__ import annotations

import importlib
import sys

import click

from pipeline.cli.check import check
from pipeline.cli.context import CliContext
from pipeline.cli.demo import demo
from pipeline.cli.run import beat, up, worker
from pipeline.cli.show import show
from pipeline.runtime.launch import DEFAULT_APP


@click.group(name="pipeline", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-A", "--app", "app_name", envvar="PIPELINE_APP", default=DEFAULT_APP,
              show_default=True, help="Import path of the Celery app, as for `celery -A`.")
@click.pass_context
def cli(ctx: click.Context, app_name: str) -> None:
    """Run and inspect the pipeline: jobs that declare what they need, on Celery and Redis.

    With no broker configured ($PIPELINE_BROKER_URL or $CELERY_BROKER_URL), the
    commands start a private Redis under ./.pipeline ($PIPELINE_DATA_DIR).
    """
    ctx.obj = CliContext(app_name=app_name)


for command in (up, worker, beat, demo, check, show):
    cli.add_command(command)


def _add_optional_group(module_name: str, attribute: str) -> None:
    """Add a command group whose module may not be installed yet."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return
        raise
    cli.add_command(getattr(module, attribute))


_add_optional_group("pipeline.cli.db", "db")
_add_optional_group("pipeline.cli.recorder", "recorder")
_add_optional_group("pipeline.cli.serve", "api")
_add_optional_group("pipeline.cli.serve", "flower")


def main() -> None:
    """Entry point of the ``pipeline`` console script."""
    cli.main(args=sys.argv[1:], prog_name="pipeline")
