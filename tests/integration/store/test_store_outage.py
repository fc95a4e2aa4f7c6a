"""The database goes away while 500 jobs' events flow; every event is still recorded.

PostgreSQL: the recorder reaches the server through a TCP proxy run by the
test; the outage closes the proxy's port and cuts every open connection, so
writes fail and new connections are refused until it listens again.

SQLite: another connection holds the file's write lock (``BEGIN EXCLUSIVE``)
for longer than the recorder's busy timeout, so its writes fail with
"database is locked" until the lock is released.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from pipeline.keys import Keys
from pipeline.messages import events
from pipeline.store import session
from pipeline.store.models import Job, QueueLog
from pipeline.store.recorder import GROUP, Recorder, RecorderThread

STREAM = Keys().events
JOBS = 500


class TcpProxy:
    """Forwards a local port to *target*; :meth:`cut` drops it all, :meth:`restore` reopens."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError), selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            while True:
                for key, _ in sel.select(1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)


@contextlib.contextmanager
def outage_control(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        tuple[str, contextlib.AbstractContextManager[None]]]:
    """(URL for the recorder, a context manager during which the database is unusable)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        monkeypatch.setattr(session, "SQLITE_BUSY_TIMEOUT", 0.1)
        session.dispose_all()

        @contextlib.contextmanager
        def locked() -> Iterator[None]:
            holder = sqlite3.connect(parsed.database or "", isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                holder.execute("COMMIT")
                holder.close()

        yield url, locked()
        return
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    proxy.restore()

    @contextlib.contextmanager
    def cut() -> Iterator[None]:
        proxy.cut()
        try:
            yield
        finally:
            proxy.restore()

    try:
        yield parsed.set(port=proxy.port).render_as_string(hide_password=False), cut()
    finally:
        proxy.cut()


def emit_jobs(client: redis.Redis, first: int, count: int) -> None:
    pipe = client.pipeline(transaction=False)
    for n in range(first, first + count):
        for kind in (events.QUEUED, events.STARTED, events.COMPLETED):
            events.emit(pipe, STREAM, kind, f"job-{n}", {"attempt": 1})
    pipe.execute()


def test_all_events_are_recorded_across_a_database_outage(
        store_url: str, store_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    with outage_control(store_url, monkeypatch) as (recorder_url, outage):
        thread = RecorderThread(lambda: Recorder(store_redis, STREAM, recorder_url,
                                                 batch_size=100, block_ms=50,
                                                 max_backoff=0.5))
        thread.start()
        try:
            emit_jobs(store_redis, 0, 150)
            time.sleep(0.3)
            with outage:
                emit_jobs(store_redis, 150, 200)  # flows while the database is away
                time.sleep(1.5)
            emit_jobs(store_redis, 350, 150)
            sessions = session.open_store(store_url)
            deadline = time.monotonic() + 60
            while True:
                with sessions() as db:
                    done = db.scalar(select(func.count()).where(Job.state == "COMPLETED"))
                if done == JOBS:
                    break
                assert time.monotonic() < deadline, f"only {done} of {JOBS} jobs recorded"
                time.sleep(0.1)
        finally:
            thread.stop()
    assert thread.recorder is not None
    assert thread.recorder.stats.failures > 0, "the outage did not make a write fail"
    with session.open_store(store_url)() as db:
        assert db.scalar(select(func.count()).select_from(QueueLog)) == 3 * JOBS
        assert db.scalar(select(func.count()).select_from(Job)) == JOBS
    assert store_redis.xpending(STREAM, GROUP)["pending"] == 0
    assert store_redis.xlen(STREAM) == 0
