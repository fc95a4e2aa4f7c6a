"""``pipeline recorder``: write the event stream to the job store, as its own process.

This is the default way to record (``pipeline up`` starts one): a recorder
thread inside a worker competes with the worker's own main loop and measured
at about half the worker's throughput; as its own process, lowered in
priority with ``--nice``, it takes the CPU the workers leave and catches up
when they are idle. Several recorders share the stream's consumer group, so
running more is safe. ``pipeline_store_recorder = True`` runs a thread in
each worker instead.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import click

from pipeline.app.recorder import recorder_for
from pipeline.cli.context import get_context, load_app, reports_errors, use_broker
from pipeline.cli.output import json_lines_option, say
from pipeline.store import migrate
from pipeline.store.session import check_schema, get_engine, masked


@click.command()
@click.option("--batch-size", default=1000, show_default=True,
              help="Most events written in one transaction.")
@click.option("--block-ms", default=1000, show_default=True,
              help="How long one read of the stream waits for new events.")
@click.option("--linger-ms", default=100, show_default=True,
              help="After a small batch, wait this long so the next one is larger.")
@click.option("--report", default=60.0, show_default=True,
              help="Seconds between progress lines (0: none).")
@click.option("--nice", "niceness", default=10, show_default=True, type=click.IntRange(0, 19),
              help="Lower this process's CPU priority so workers come first under load.")
@click.option("--upgrade/--no-upgrade", default=False, show_default=True,
              help="Migrate the job store to the current schema before recording.")
@json_lines_option
@reports_errors
def recorder(batch_size: int, block_ms: int, linger_ms: int, report: float, niceness: int,
             upgrade: bool, as_json: bool) -> None:
    """Record job events from Redis into the job store until stopped (Ctrl-C)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if niceness:
        os.nice(niceness)
    with use_broker() as broker_url:
        app = load_app(get_context().app_name, broker_url)
        worker = recorder_for(app, batch_size=batch_size, block_ms=block_ms,
                              linger_ms=linger_ms)
        if upgrade:
            migrate.upgrade(str(worker.store_url))
        check_schema(get_engine(worker.store_url))
        stop = threading.Event()

        def ask_to_stop(signum: int, _frame: Any) -> None:
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, ask_to_stop)
        thread = threading.Thread(target=worker.run, args=(stop,), name="recorder")
        thread.start()
        say(as_json, "ready", f"recording {worker.stream} into "
            f"{masked(str(worker.store_url))} as {worker.consumer}", err=True,
            stream=worker.stream, store=masked(str(worker.store_url)),
            consumer=worker.consumer)
        while not stop.wait(report or None):
            s = worker.stats
            say(as_json, "report", f"{time.strftime('%H:%M:%S')} recorded {s.events} events "
                f"in {s.batches} batches, lag {s.last_lag:.3f} s, {s.failures} failed writes",
                err=True, events=s.events, batches=s.batches, lag=s.last_lag,
                failures=s.failures)
        thread.join()
