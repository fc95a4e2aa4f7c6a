"""Engines and sessions of the job store, one engine per URL and process.

Engines are created on first use, never at import, and dropped in a child
process after ``fork`` (a pool's connections must not be shared with the
parent), so a prefork worker's children each open their own. SQLite gets its
directory created, WAL journaling and a busy timeout, so that several worker
processes and a recorder can share one file. :func:`open_store` also checks
that the schema is at the Alembic head and says how to get there if not.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from pipeline import conf
from pipeline.errors import StoreError, StoreNotMigrated

#: The Alembic scripts, installed with the package (``migrations/`` at the top of
#: a checkout points here), or ``$PIPELINE_MIGRATIONS`` when set.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT = 30.0
UPGRADE_COMMAND = "pipeline db upgrade"

_engines: dict[str, Engine] = {}
_checked: set[str] = set()
_lock = threading.Lock()


def _forget_engines_after_fork() -> None:
    # The parent owns the pooled connections: drop them here without closing.
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()
    _checked.clear()


os.register_at_fork(after_in_child=_forget_engines_after_fork)


def store_url(source: str | Mapping[str, Any] | None = None) -> str:
    """The store URL: *source* itself, or read from a Celery config mapping.

    ``None`` reads the ``PIPELINE_*`` environment: ``$PIPELINE_STORE_URL``,
    ``$PIPELINE_DATABASE_URL``, else SQLite in ``$PIPELINE_DATA_DIR`` (default
    ``./.pipeline``). A bare ``postgresql://`` URL is given the psycopg 3 driver.
    """
    if source is None:
        source = conf.from_environ(os.environ)
    url = source if isinstance(source, str) else conf.store_url_from(source)
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def masked(url: str) -> str:
    """*url* with its password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _prepare_sqlite(url: URL) -> None:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def create_store_engine(url: str) -> Engine:
    """A new engine for *url* (not cached): SQLite tuned for several writers."""
    parsed = make_url(store_url(url))
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite(parsed)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    # A database host that vanishes must fail a connect, not hang the recorder.
    return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def get_engine(url: str | None = None) -> Engine:
    """This process's engine for *url* (see :func:`store_url`), created on first use."""
    key = store_url(url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_store_engine(key)
        return engine


@lru_cache(maxsize=4)
def script_directory(location: str | None = None) -> ScriptDirectory:
    """The Alembic script directory of the store's migrations."""
    path = Path(location or os.environ.get("PIPELINE_MIGRATIONS") or MIGRATIONS_DIR)
    if not (path / "env.py").is_file():
        raise StoreError(
            f"the job store migrations are not at {path}: reinstall pipeline (they ship in "
            "pipeline/store/migrations) or point PIPELINE_MIGRATIONS at a migrations folder")
    return ScriptDirectory(str(path))


def head_revision() -> str:
    """The revision the code expects the schema at."""
    head = script_directory().get_current_head()
    if head is None:
        raise StoreError("the job store migrations have no revision")
    return head


def check_schema(engine: Engine) -> None:
    """Raise ``StoreNotMigrated`` unless the schema of *engine* is at the head revision."""
    head = head_revision()
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    except Exception as exc:  # the database cannot be reached: say which one
        raise StoreError(f"cannot read the job store at {masked(str(engine.url))}: {exc}") from exc
    if tuple(current) == (head,):
        return
    found = ", ".join(current) if current else "no schema (an empty database)"
    raise StoreNotMigrated(
        f"the job store at {masked(str(engine.url))} has {found}, but this version "
        f"needs revision {head}: run `{UPGRADE_COMMAND}` (or `alembic upgrade head`)")


def open_store(url: str | None = None, *, check: bool = True) -> sessionmaker[Session]:
    """A session factory on this process's engine for *url*.

    Args:
        url: the store URL; None reads ``$PIPELINE_DATABASE_URL`` or uses SQLite.
        check: verify once per process that the schema is at the head revision.

    Raises:
        StoreNotMigrated: the schema is missing or behind; the message names the command.
    """
    engine = get_engine(url)
    key = str(engine.url)
    if check and key not in _checked:
        check_schema(engine)
        _checked.add(key)
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    with open_store(url).begin() as session:
        yield session


def dispose_all() -> None:
    """Close every engine of this process (tests, and commands about to exit)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _checked.clear()
