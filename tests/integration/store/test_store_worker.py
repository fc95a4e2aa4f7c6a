"""A real ``celery worker`` with ``pipeline.app.recorder.install(app)`` records the stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import redis
from celery import Celery, signals
from sqlalchemy import func, select

from pipeline.app import recorder
from pipeline.app.install import install as install_pipeline
from pipeline.keys import Keys
from pipeline.messages import events
from pipeline.store import session
from pipeline.store.models import Job
from pipeline.store.recorder import RecorderThread

ROOT = Path(__file__).resolve().parents[3]
APP = """
from celery import Celery
from pipeline.app.install import install
from pipeline.app import recorder

app = install(Celery("storeapp", broker={broker!r}))
app.conf.pipeline_store_url = {store!r}
app.conf.pipeline_store_recorder = True
app.conf.worker_hijack_root_logger = False
recorder.install(app)
"""


def test_worker_runs_a_recorder_thread_from_worker_ready_until_shutdown(
        tmp_path: Path, store_url: str, store_redis: redis.Redis, store_broker_url: str) -> None:
    broker = store_broker_url
    (tmp_path / "storeapp.py").write_text(textwrap.dedent(APP.format(broker=broker,
                                                                     store=store_url)))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "storeapp", "worker", "--pool=prefork",
         "-c", "2", "--loglevel=INFO", "--without-gossip", "--without-mingle"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for n in range(20):
            events.emit(store_redis, Keys().events, "queued", f"w{n}", {"priority": 6})
        sessions = session.open_store(store_url)
        deadline = time.monotonic() + 60
        while True:
            with sessions() as db:
                count = db.scalar(select(func.count()).select_from(Job))
            if count == 20:
                break
            assert worker.poll() is None, f"the worker exited: {worker.communicate()[0]}"
            assert time.monotonic() < deadline, f"{count} of 20 jobs recorded"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=30)[0]
    assert worker.returncode == 0, output
    assert store_redis.xlen(Keys().events) == 0


class Consumer:
    """What ``worker_ready`` is sent with: the worker's consumer, holding its app."""

    def __init__(self, app: Celery) -> None:
        self.app = app


def worker_signals_start_and_stop_the_thread(broker: str, tmp_path: Path,
                                             enabled: bool) -> list[str]:
    """Names of the recorder threads alive after ``worker_ready`` on an app."""
    app = install_pipeline(Celery("signals", broker=broker))
    app.conf.pipeline_store_url = f"sqlite:///{tmp_path / 'signals.db'}"
    app.conf.pipeline_store_recorder = enabled
    recorder.install(app)
    recorder.install(app)  # a second call adds nothing
    signals.worker_ready.send(sender=Consumer(app))
    alive = [t.name for t in threading.enumerate() if isinstance(t, RecorderThread)]
    signals.worker_shutdown.send(sender=None)
    return alive


def test_worker_ready_starts_one_recorder_thread_and_shutdown_stops_it(
        store_broker_url: str, tmp_path: Path) -> None:
    started = worker_signals_start_and_stop_the_thread(store_broker_url, tmp_path, True)
    assert started == ["pipeline-recorder"]
    assert not [t for t in threading.enumerate() if isinstance(t, RecorderThread)]


def test_no_recorder_thread_when_a_separate_recorder_process_writes(
        store_broker_url: str, tmp_path: Path) -> None:
    assert worker_signals_start_and_stop_the_thread(store_broker_url, tmp_path, False) == []
