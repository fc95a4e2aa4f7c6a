"""What every command shares: the app to load, the broker to use, error reporting.

The CLI never imports the deployable app (``tasks/``) directly: like
``celery -A``, it takes the app's import path (``-A/--app``, default
``tasks.app``, or ``$PIPELINE_APP``) and loads it by name when a command needs it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
import redis

from pipeline import conf
from pipeline.conf import broker_redis_url
from pipeline.errors import PipelineError, ServiceError
from pipeline.runtime.embedded import (
    EmbeddedRedis,
    answers,
    configured_broker_url,
    data_dir,
    read_url_file,
)
from pipeline.runtime.launch import DEFAULT_APP
from pipeline.runtime.redisurl import client_for, is_sentinel
from pipeline.runtime.services import Services, services_for

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class CliContext:
    """The options of the ``pipeline`` group, handed to every command."""

    app_name: str = DEFAULT_APP


def get_context() -> CliContext:
    """The :class:`CliContext` of the running command (a default one outside a group)."""
    ctx = click.get_current_context()
    found = ctx.find_object(CliContext)
    return found if found is not None else CliContext()


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn an error into a one-line ``Error: ...`` and exit code 1.

    A ``PipelineError`` says what is wrong itself; Redis or the database
    failing in the middle of a command is named as such.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PipelineError as exc:
            raise click.ClickException(str(exc)) from exc
        except redis.RedisError as exc:
            raise click.ClickException(f"Redis failed: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            from sqlalchemy.exc import SQLAlchemyError

            if isinstance(exc, SQLAlchemyError):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise click.ClickException(
                    f"the job store failed: {type(exc).__name__}: {first}") from exc
            raise

    return wrapper


@contextlib.contextmanager
def use_broker(*, exclusive: bool = False) -> Iterator[str]:
    """Yield the broker URL to use, starting the embedded Redis if none is configured.

    Order: ``$PIPELINE_BROKER_URL`` / ``$CELERY_BROKER_URL``; the embedded server
    another ``pipeline`` process runs for the same data directory; else a new
    embedded server, stopped when the block ends.

    Args:
        exclusive: refuse to share another process's embedded server (``up``:
            two of them would run two beats and fight over one data directory).

    Raises:
        ServiceError: *exclusive* and another process serves the data directory.
    """
    directory = data_dir()
    # Beat's schedule and the demo's worker log live there whichever broker is used.
    os.makedirs(directory, exist_ok=True)
    configured = configured_broker_url()
    if configured:
        yield configured
        return
    running = read_url_file(directory)
    if running and answers(running):
        if exclusive:
            raise ServiceError(
                f"pipeline is already running for {directory}: its embedded Redis answers at "
                f"{running}. Add workers with `pipeline worker`, or stop it first (Ctrl-C in "
                "its terminal)"
            )
        click.echo(f"pipeline: using the embedded Redis at {running} (data in {directory})",
                   err=True)
        yield running
        return
    with EmbeddedRedis(directory) as server:
        click.echo(f"pipeline: started the embedded Redis at {server.url} "
                   f"(data in {directory})", err=True)
        yield server.url


def child_env(broker_url: str) -> dict[str, str]:
    """The environment of a worker or beat using *broker_url*."""
    env = dict(os.environ)
    env["PIPELINE_BROKER_URL"] = broker_url
    env["PIPELINE_DATA_DIR"] = data_dir()
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def load_app(name: str, broker_url: str | None = None) -> Any:
    """Import the Celery app *name* (``module`` or ``module:attribute``).

    Args:
        name: import path of the app, as for ``celery -A``.
        broker_url: when given, the app publishes there (and keeps its results
            there unless ``$PIPELINE_RESULT_BACKEND`` says otherwise).

    Raises:
        ServiceError: the app cannot be imported.
    """
    if broker_url is not None:
        # celeryconfig reads the environment when first imported.
        os.environ["PIPELINE_BROKER_URL"] = broker_url
    from celery.app.utils import find_app

    try:
        app = find_app(name)
    except Exception as exc:
        raise ServiceError(f"the app {name!r} cannot be loaded: {exc.__class__.__name__}: "
                           f"{exc} (run from the project directory, or pass -A)") from exc
    if broker_url is not None:
        app.conf.broker_url = broker_url
        if not os.environ.get("PIPELINE_RESULT_BACKEND"):
            app.conf.result_backend = broker_url
    return app


def _answers(app: Any, url: str, timeout: float) -> bool:
    """Whether the app's Redis (a Sentinel group's primary too) answers within *timeout*."""
    if not is_sentinel(url):
        return answers(url, timeout=timeout)
    try:
        client = client_for(url, conf.read(app.conf).master_name, socket_timeout=timeout,
                            socket_connect_timeout=timeout)
        return bool(client.ping())
    except (redis.RedisError, OSError, PipelineError):
        return False


def redacted(url: str) -> str:
    """*url* with its password replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def operator_app(timeout: float = 2.0) -> Any:
    """The app of the running command, once its Redis answers.

    Raises:
        ServiceError: Redis does not answer within *timeout* seconds, naming it.
    """
    app = load_app(get_context().app_name)
    url = broker_redis_url(app)
    if not _answers(app, url, timeout):
        raise ServiceError(f"Redis at {redacted(url)} does not answer: start it (`pipeline up` "
                           "runs one), or point PIPELINE_BROKER_URL at the one in use")
    return app


def live_services(app: Any, timeout: float = 1.0) -> Services | None:
    """The services of *app* when its Redis answers; else None, after a warning on stderr.

    For the commands that answer from the job store (``jobs``, ``stats``): without
    Redis they still answer, and say that the live part is missing (their
    ``--json`` carries ``"live": false``).
    """
    url = broker_redis_url(app)
    if _answers(app, url, timeout):
        return services_for(app)
    click.echo(f"Warning: Redis at {redacted(url)} does not answer: this comes from the job "
               "store alone, without the live state (it may lag behind)", err=True)
    return None


def operator_services(timeout: float = 2.0) -> Services:
    """The services of :func:`operator_app`: what an operator command passes to the library.

    Raises:
        ServiceError: Redis does not answer within *timeout* seconds, naming it.
    """
    return services_for(operator_app(timeout))
