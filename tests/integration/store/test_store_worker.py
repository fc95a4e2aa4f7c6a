"""A real ``celery worker`` process with ``recorder.install(app)`` records the stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import redis
from sqlalchemy import func, select

from pipeline import events
from pipeline.keys import Keys
from pipeline.store import session
from pipeline.store.models import Job

ROOT = Path(__file__).resolve().parents[3]
APP = """
from celery import Celery
from pipeline.appsetup import install
from pipeline.store import recorder

app = install(Celery("storeapp", broker={broker!r}))
app.conf.pipeline_store_url = {store!r}
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
