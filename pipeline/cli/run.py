"""``pipeline up``, ``pipeline worker`` and ``pipeline beat``: run the system in the foreground.

Each uses the configured broker, or the embedded Redis when none is
configured, and stops every process it started on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import sys

import click

from pipeline.cli.context import child_env, get_context, reports_errors, use_broker
from pipeline.cli.output import json_lines_option, say
from pipeline.runtime.checks import require_safe_redis
from pipeline.runtime.embedded import data_dir
from pipeline.runtime.launch import (
    BEAT_READY,
    DEFAULT_QUEUE,
    STOP_TIMEOUT,
    WORKER_READY,
    ChildSpec,
    Supervisor,
    beat_argv,
    stop_signals,
    worker_argv,
)

#: What ``pipeline recorder`` prints once it records.
RECORDER_READY = "recording "
_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": False}
_concurrency = click.option("-c", "--concurrency", type=click.IntRange(min=1), default=None,
                            help="Worker processes (default: Celery's, the number of CPUs).")
_queues = click.option("-Q", "--queues", default=DEFAULT_QUEUE, show_default=True,
                       help="Comma-separated queues the worker consumes.")
_loglevel = click.option("-l", "--loglevel", default="INFO", show_default=True,
                         type=click.Choice(["DEBUG", "INFO"], case_sensitive=False),
                         help="Log level of the worker and beat.")
_include = click.option("-I", "--include", multiple=True,
                        help="Task module the worker imports besides the app's (repeatable).")
_stop_timeout = click.option("--stop-timeout", type=float, default=STOP_TIMEOUT,
                             show_default=True,
                             help="Seconds running jobs get to finish on stop before SIGKILL.")


def _run(specs: list[ChildSpec], *, exclusive: bool, stop_timeout: float,
         what: str, as_json: bool = False) -> None:
    with stop_signals() as stop, use_broker(exclusive=exclusive) as url:
        require_safe_redis(url)
        directory = data_dir()
        with Supervisor(child_env(url), stop_event=stop, stop_timeout=stop_timeout) as sup:
            for spec in specs:
                sup.start(spec)
            if not sup.wait_ready():
                return
            pids = ", ".join(f"{child.spec.name} pid {child.pid}" for child in sup.children)
            say(as_json, "ready", f"pipeline ready: broker {url} ({what}; {pids}; data in "
                f"{directory}); Ctrl-C stops", broker=url, data_dir=directory,
                processes={child.spec.name: child.pid for child in sup.children})
            sup.run()
        say(as_json, "stopped", "pipeline: stopped", err=True)


def _worker_spec(concurrency: int | None, queues: str, loglevel: str,
                 include: tuple[str, ...], extra: tuple[str, ...]) -> ChildSpec:
    modules = ["-I", ",".join(include)] if include else []
    argv = worker_argv(get_context().app_name, queues.split(","), concurrency,
                       loglevel=loglevel.upper(), extra=[*modules, *extra])
    return ChildSpec("worker", argv, WORKER_READY)


def _recorder_spec() -> ChildSpec:
    argv = [sys.executable, "-m", "pipeline", "-A", get_context().app_name, "recorder",
            "--upgrade", "--report", "0"]
    return ChildSpec("recorder", argv, RECORDER_READY)


def _api_spec() -> ChildSpec:
    from pipeline.cli.serve import API_READY

    argv = [sys.executable, "-m", "pipeline", "-A", get_context().app_name, "api"]
    return ChildSpec("api", argv, API_READY)


def _beat_spec(loglevel: str) -> ChildSpec:
    argv = beat_argv(get_context().app_name, data_dir(), loglevel=loglevel.upper())
    return ChildSpec("beat", argv, BEAT_READY)


@click.command()
@_concurrency
@_queues
@_include
@_loglevel
@_stop_timeout
@click.option("--api", "with_api", is_flag=True,
              help="Also serve the REST API, dashboard and metrics (pipeline_api_host:port).")
@json_lines_option
@reports_errors
def up(concurrency: int | None, queues: str, include: tuple[str, ...], loglevel: str,
       stop_timeout: float, with_api: bool, as_json: bool) -> None:
    """Run the whole system: (embedded) Redis, a worker, beat and the recorder, until Ctrl-C."""
    specs = [_worker_spec(concurrency, queues, loglevel, include, ()), _beat_spec(loglevel),
             _recorder_spec()]
    what = "worker, beat and recorder"
    if with_api:
        specs.append(_api_spec())
        what += " and API"
    _run(specs, exclusive=True, stop_timeout=stop_timeout, what=what, as_json=as_json)


@click.command(context_settings=_PASS_THROUGH)
@_concurrency
@_queues
@_include
@_loglevel
@_stop_timeout
@json_lines_option
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@reports_errors
def worker(concurrency: int | None, queues: str, include: tuple[str, ...], loglevel: str,
           stop_timeout: float, as_json: bool, celery_args: tuple[str, ...]) -> None:
    """Run a worker (extra arguments go to ``celery worker``), until Ctrl-C."""
    spec = _worker_spec(concurrency, queues, loglevel, include, celery_args)
    _run([spec], exclusive=False, stop_timeout=stop_timeout, what="worker", as_json=as_json)


@click.command()
@_loglevel
@json_lines_option
@reports_errors
def beat(loglevel: str, as_json: bool) -> None:
    """Run beat (the maintenance schedule), until Ctrl-C; run one per system."""
    _run([_beat_spec(loglevel)], exclusive=False, stop_timeout=STOP_TIMEOUT, what="beat",
         as_json=as_json)
