"""``pipeline status``: the whole system on one screen."""

from __future__ import annotations

import click

from pipeline.cli.context import operator_services, reports_errors
from pipeline.cli.output import json_option, print_json, show
from pipeline.cli.views import status_view
from pipeline.observe import inspection


@click.command()
@click.option("--no-workers", is_flag=True,
              help="Do not ask the workers (asking waits up to --worker-timeout).")
@click.option("--worker-timeout", default=1.0, show_default=True,
              help="Seconds to wait for the workers to answer.")
@click.option("--svg", metavar="FILE", default=None,
              help="Also save the screen as an SVG picture in FILE.")
@json_option
@reports_errors
def status(no_workers: bool, worker_timeout: float, svg: str | None, as_json: bool) -> None:
    """Depth per priority, running and parked jobs, locks, workers and dead letters."""
    services = operator_services()
    found = inspection.status(services, with_workers=not no_workers, worker_timeout=worker_timeout)
    if as_json:
        print_json(found.as_dict())
        return
    show(status_view(found), svg, title="pipeline status")
