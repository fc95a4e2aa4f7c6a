"""Migrations up, down and up again; the models match them; a bare database is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis
from sqlalchemy import inspect

from pipeline.errors import StoreNotMigrated
from pipeline.keys import Keys
from pipeline.messages import events
from pipeline.store import migrate, session
from pipeline.store.recorder import GROUP, Recorder

STREAM = Keys().events

ROOT = Path(__file__).resolve().parents[3]
TABLES = {"alembic_version", "jobs", "queue_log", "workflows"}


def tables(url: str) -> set[str]:
    engine = session.create_store_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_leaves_the_head_schema(empty_store_url: str) -> None:
    migrate.upgrade(empty_store_url)
    assert tables(empty_store_url) == TABLES
    assert migrate.current(empty_store_url) == session.head_revision()
    migrate.downgrade(empty_store_url)
    assert tables(empty_store_url) <= {"alembic_version"}
    assert migrate.current(empty_store_url) is None
    migrate.upgrade(empty_store_url)
    assert tables(empty_store_url) == TABLES
    migrate.check(empty_store_url)  # autogenerate finds no difference


def test_migrations_have_one_head() -> None:
    assert len(session.script_directory().get_heads()) == 1


def test_store_not_migrated_says_which_command_to_run(empty_store_url: str) -> None:
    with pytest.raises(StoreNotMigrated, match=r"run `pipeline db upgrade`"):
        session.open_store(empty_store_url)


def test_store_behind_the_head_is_refused_too(store_url: str) -> None:
    migrate.downgrade(store_url, "base")
    session.dispose_all()
    with pytest.raises(StoreNotMigrated, match=f"needs revision {session.head_revision()}"):
        session.open_store(store_url)


def test_recorder_on_an_unmigrated_store_keeps_the_events_until_it_is_migrated(
        empty_store_url: str, store_redis: redis.Redis) -> None:
    events.emit(store_redis, STREAM, "queued", "kept", {})
    recorder = Recorder(store_redis, STREAM, empty_store_url, block_ms=10, max_backoff=0.01)
    recorder.ensure_group()
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    recorder.run_once(stop)  # retries until stopped, acknowledging nothing
    timer.join()
    assert recorder.stats.failures >= 1
    assert store_redis.xpending(STREAM, GROUP)["pending"] == 1
    migrate.upgrade(empty_store_url)
    assert recorder.run_once() == 1
    assert store_redis.xlen(STREAM) == 0


def test_cli_upgrade_from_another_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli' / 'store.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-c", "from pipeline.cli.main import main; main()", "db"]
    out = subprocess.run([*run, "current", "--url", url], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "run `pipeline db upgrade`" in out
    subprocess.run([*run, "upgrade", "--url", url], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    out = subprocess.run([*run, "current", "--url", url], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "up to date" in out


def test_migration_0003_rewrites_repr_arguments_and_results_as_json(
        empty_store_url: str) -> None:
    from sqlalchemy import text

    migrate.upgrade(empty_store_url, "0002")
    engine = session.create_store_engine(empty_store_url)
    rows = [("a", "('bert', 5)", "{'ok': True, 'n': None}"), ("b", '["gpt"]', '{"ok": 1}'),
            ("c", "<object at 0x1>", None)]
    try:
        with engine.begin() as conn:
            for job_id, args, result in rows:
                conn.execute(text(
                    "INSERT INTO jobs (id, args, result, state, state_key, attempts, updated_at) "
                    "VALUES (:id, :args, :result, 'COMPLETED', 1, 1, '2026-12-01 00:00:00')"),
                    {"id": job_id, "args": args, "result": result})
        migrate.upgrade(empty_store_url)
        with engine.connect() as conn:
            found = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
                text("SELECT id, args, result, kwargs FROM jobs"))}
    finally:
        engine.dispose()
    assert found == {"a": ('["bert",5]', '{"ok":true,"n":null}', None),
                     "b": ('["gpt"]', '{"ok": 1}', None),
                     "c": ("<object at 0x1>", None, None)}
