"""``pipeline db``: migrate the job store's schema.

The store is the app's ``pipeline_store_url``, else ``$PIPELINE_DATABASE_URL``,
else SQLite in the data directory; ``--url`` overrides all of them.
"""

from __future__ import annotations

import click

from pipeline import conf
from pipeline.cli.context import get_context, load_app, reports_errors
from pipeline.cli.output import json_option, print_json
from pipeline.errors import PipelineError
from pipeline.store import migrate
from pipeline.store.session import head_revision, masked, store_url

url_option = click.option(
    "--url", envvar="PIPELINE_DATABASE_URL", default=None, metavar="URL",
    help="SQLAlchemy URL of the store (default: the app's pipeline_store_url, "
         "$PIPELINE_DATABASE_URL, or SQLite in the data directory).")


def resolve_url(url: str | None) -> str:
    """The store URL of the command: *url*, else the app's setting, else the default."""
    if url:
        return store_url(url)
    try:
        app = load_app(get_context().app_name)
        return store_url(conf.store_url_from(app.conf))
    except (PipelineError, ImportError) as exc:
        # Migrating must not need a loadable app: fall back to the environment.
        click.echo(f"pipeline: cannot read the app's settings ({exc}); using the store "
                   "the environment names", err=True)
        return store_url(None)


@click.group()
def db() -> None:
    """Create and migrate the job store's tables (Alembic)."""


@db.command()
@click.argument("revision", default="head")
@url_option
@json_option
@reports_errors
def upgrade(revision: str, url: str | None, as_json: bool) -> None:
    """Migrate the store up to REVISION (default: the newest)."""
    target = resolve_url(url)
    migrate.upgrade(target, revision)
    _at(target, migrate.current(target), as_json)


def _at(target: str, revision: str | None, as_json: bool) -> None:
    if as_json:
        print_json({"store": masked(target), "revision": revision, "head": head_revision()})
    else:
        click.echo(f"job store {masked(target)}: at revision {revision or 'base'}")


@db.command()
@click.argument("revision", default="base")
@url_option
@click.option("--yes", is_flag=True, help="Do not ask before dropping data.")
@json_option
@reports_errors
def downgrade(revision: str, url: str | None, yes: bool, as_json: bool) -> None:
    """Migrate the store down to REVISION (default: base, which drops every table)."""
    target = resolve_url(url)
    if not yes:
        click.confirm(f"Downgrade {masked(target)} to {revision}? Data in dropped tables "
                      "is lost", abort=True)
    migrate.downgrade(target, revision)
    _at(target, migrate.current(target), as_json)


@db.command()
@url_option
@json_option
@reports_errors
def current(url: str | None, as_json: bool) -> None:
    """Show the store's revision and the one this version needs."""
    target = resolve_url(url)
    revision = migrate.current(target)
    head = head_revision()
    if as_json:
        print_json({"store": masked(target), "revision": revision, "head": head,
                    "up_to_date": revision == head})
        return
    click.echo(f"job store {masked(target)}: at revision {revision or 'none'}")
    if revision != head:
        click.echo(f"this version needs revision {head}: run `pipeline db upgrade`")
    else:
        click.echo("up to date")


@db.command()
@url_option
@json_option
@reports_errors
def check(url: str | None, as_json: bool) -> None:
    """Check that the models match the migrated schema (for development)."""
    target = resolve_url(url)
    migrate.check(target)
    if as_json:
        print_json({"store": masked(target), "in_sync": True})
