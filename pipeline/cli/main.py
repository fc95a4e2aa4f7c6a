"""The ``pipeline`` command (also ``celery pipeline``): one module per command group.

Running it: ``up``, ``worker``, ``beat`` (:mod:`pipeline.cli.run`), ``demo``
(:mod:`pipeline.cli.demo`), ``check`` (:mod:`pipeline.cli.check`), ``db``
(:mod:`pipeline.cli.db`), ``recorder`` (:mod:`pipeline.cli.recorder`), ``agents
status|allocate`` (:mod:`pipeline.cli.agents`), ``agent`` (the reference agent of
an agent pool, over HTTP: :mod:`pipeline.cli.agent`).

Operating it: ``submit`` (:mod:`pipeline.cli.submit`), ``status``
(:mod:`pipeline.cli.status`), ``jobs`` (:mod:`pipeline.cli.jobs`), ``show``
(:mod:`pipeline.cli.show`), ``cancel`` and ``reprioritize``
(:mod:`pipeline.cli.actions`), ``flush`` (:mod:`pipeline.cli.flush`), ``locks``
(:mod:`pipeline.cli.locks`), ``dlq`` (:mod:`pipeline.cli.dlq`), ``stats``
(:mod:`pipeline.cli.stats`), ``monitor`` (:mod:`pipeline.cli.monitor`) and
``import`` (:mod:`pipeline.cli.importer`).

Serving it: ``api`` and ``flower`` (:mod:`pipeline.cli.serve`).

``pipeline --version`` and ``pipeline version`` print the release of the
installed distribution (declared once, as ``pipeline.__version__``, which the
build reads).
"""

from __future__ import annotations

import sys
from importlib import metadata

import click

from pipeline.cli.actions import cancel, reprioritize
from pipeline.cli.agent import agent
from pipeline.cli.agents import agents
from pipeline.cli.check import check
from pipeline.cli.context import CliContext
from pipeline.cli.db import db
from pipeline.cli.demo import demo
from pipeline.cli.dlq import dlq
from pipeline.cli.flush import flush
from pipeline.cli.importer import import_requests
from pipeline.cli.jobs import jobs
from pipeline.cli.locks import locks
from pipeline.cli.monitor import monitor
from pipeline.cli.output import json_option, print_json
from pipeline.cli.recorder import recorder
from pipeline.cli.run import beat, up, worker
from pipeline.cli.serve import api, flower
from pipeline.cli.show import show
from pipeline.cli.stats import stats
from pipeline.cli.status import status
from pipeline.cli.submit import submit
from pipeline.runtime.launch import DEFAULT_APP

#: The distribution name on the package index (``[project] name``; the import name is
#: ``pipeline``).
DISTRIBUTION = "celery-job-pipeline"
VERSION_MESSAGE = f"pipeline %(version)s ({DISTRIBUTION})"


@click.group(name="pipeline", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-A", "--app", "app_name", envvar="PIPELINE_APP", default=DEFAULT_APP,
              show_default=True, help="Import path of the Celery app, as for `celery -A`.")
@click.version_option(None, "-V", "--version", package_name=DISTRIBUTION,
                      message=VERSION_MESSAGE)
@click.pass_context
def cli(ctx: click.Context, app_name: str) -> None:
    """Run and inspect the pipeline: jobs that declare what they need, on Celery and Redis.

    With no broker configured ($PIPELINE_BROKER_URL or $CELERY_BROKER_URL), the
    commands start a private Redis under ./.pipeline ($PIPELINE_DATA_DIR).
    """
    ctx.obj = CliContext(app_name=app_name)


@click.command()
@json_option
def version(as_json: bool) -> None:
    """Print the release of the pipeline, of Celery and of kombu."""
    import celery
    import kombu

    if as_json:
        print_json({"pipeline": metadata.version(DISTRIBUTION), "distribution": DISTRIBUTION,
                    "celery": celery.__version__, "kombu": kombu.__version__})
        return
    click.echo(VERSION_MESSAGE % {"version": metadata.version(DISTRIBUTION)})
    click.echo(f"celery {celery.__version__}, kombu {kombu.__version__}")


for command in (version, up, worker, beat, demo, check, db, recorder, agents, agent,
                submit, status, jobs, show, cancel, reprioritize, flush, locks, dlq, stats,
                monitor, import_requests, api, flower):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``pipeline`` console script."""
    cli.main(args=sys.argv[1:], prog_name="pipeline")
