"""Every key each Lua script touches lies in one Redis Cluster hash slot: the pipeline's tag.

Redis Cluster runs a script only when all its keys are in one slot. The scripts
build most key names themselves, so the test watches what they really touch:
it runs every script (or its function, on Redis 7) through the lock engine
while ``MONITOR`` reports each command a script executes, asks Redis for that
command's keys (``COMMAND GETKEYS``) and checks each key's slot.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from importlib import resources

import redis
from redis.crc import key_slot

from pipeline.locks import scripts
from pipeline.locks.engine import RedisLockEngine
from pipeline.locks.leases import RedisLeases
from pipeline.locks.resources import EXCLUSIVE, SHARED, Claim
from pipeline.locks.ticket import Ticket
from tests.helpers import redisdb

QUEUE = "{pipeline}:pipeline"
POOL_LIST = "{pipeline}:pool.p"
_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)")


def _unescape(arg: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code.startswith(b"x") and len(code) == 3:
            return bytes([int(code[1:], 16)])
        return {b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(code, code)

    return _ESCAPE.sub(one, arg)


class ScriptCommands:
    """Collects the commands scripts run (``MONITOR`` lines marked ``lua``) in a thread."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.commands: list[list[bytes]] = []
        #: Scripts (by digest) and functions (by name) called.
        self.called: set[bytes] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = False

    def _run(self) -> None:
        connection = self.client.connection_pool.get_connection()
        connection.send_command("MONITOR")
        connection.read_response()
        self._ready.set()
        while not self._stop:
            if not connection.can_read(timeout=0.1):
                continue
            line = connection.read_response()
            line = line if isinstance(line, bytes) else str(line).encode()
            args = [_unescape(a) for a in _ARG.findall(line)]
            if b" lua]" in line:
                self.commands.append(args)
            elif args and args[0].upper() in (b"EVALSHA", b"FCALL"):
                self.called.add(args[1])
        connection.disconnect()

    def __enter__(self) -> ScriptCommands:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # the last lines reach the monitor
        self._stop = True
        self._thread.join(5)


def _drive_every_script(locks: RedisLockEngine) -> None:
    """Run each lock script through the engine, on paths that touch all its keys."""
    model = (Claim("model:m", EXCLUSIVE, 1), Claim("user:u", EXCLUSIVE, 1))
    reader = (Claim("model:m", SHARED, 1), Claim("project:p", EXCLUSIVE, 2))
    message = json.dumps({"body": "[]", "headers": {"id": "b"}, "properties": {"priority": 6}})
    locks.acquire(Ticket("a", "a", model, 6), host="h", pid=1)
    locks.acquire(Ticket("b", "b", reader, 6), host="h", pid=1, park_message=message,
                  queue_key=QUEUE)
    locks.acquire(Ticket("c", "c", model, 9), host="h", pid=1, park_message=message,
                  queue_key=QUEUE)
    locks.reprioritize_parked("c", 3)
    locks.renew(["a", "gone"])
    locks.cancel_parked("c", "test")
    locks.release("a", "a", event="completed", detail="{}")  # hands model:m to b
    locks.client.rpush(QUEUE, json.dumps({"headers": {"id": "q"}}))
    locks.queued_position([QUEUE], "q")
    locks.take_queued([QUEUE], "q", "cancelled by request")
    locks.acquire(Ticket("d", "d", model, 6), host="h", pid=1, park_message=message,
                  queue_key=QUEUE)
    locks.force_release("model:m", by="test", reason="an operator's release")
    _drive_pool_scripts(locks)
    time.sleep(1.1)  # b's grant and every lease run out
    locks.sweep(100)
    RedisLeases(locks.client, locks.keys, locks.settings).expire(100)


def _drive_pool_scripts(locks: RedisLockEngine) -> None:
    """Claims and leases of an agent pool: granted, parked, delayed, expired, set aside."""
    leases = RedisLeases(locks.client, locks.keys, locks.settings)
    lists = [POOL_LIST, *(f"{POOL_LIST}\x06\x16{step}" for step in (3, 6, 9))]

    def message(job: str, **header: object) -> str:
        return json.dumps({"body": "[]", "content-type": "application/json",
                           "headers": {"id": job, "task": "t", "pipeline": {
                               "version": 1, **header}}, "properties": {"priority": 6}})

    locks.client.lpush(lists[2], message("p1", models=["pm"]), message("p2", models=["pm"]),
                       message("p3", not_before=time.time() + 0.05),
                       message("p4", expires_at=1.0), "not a message")
    first = leases.claim("p", "pool.p", lists, "a", default_priority=6)
    assert first.granted is not None
    second = leases.claim("p", "pool.p", lists, "b", default_priority=6)
    assert second.granted is None
    job, lease = first.granted.job_id, first.granted.lease
    leases.start(job, lease)
    leases.renew(job, lease)
    leases.finish(job, lease)
    locks.release(first.granted.holder, job, token=first.granted.token)  # hands pm to p2
    time.sleep(0.06)  # p3 is due
    handed = leases.claim("p", "pool.p", lists, "b", default_priority=6)
    assert handed.granted is not None
    leases.give_back(handed.granted.job_id, handed.granted.lease, "stopping")
    again = leases.claim("p", "pool.p", lists, "c", default_priority=6)
    assert again.granted is not None
    leases.cancel(again.granted.job_id, "cancelled by request")


def _keys_of(client: redis.Redis, command: list[bytes]) -> list[bytes]:
    try:
        return [k if isinstance(k, bytes) else str(k).encode()
                for k in client.command_getkeys(*command)]
    except redis.ResponseError:  # a command without keys (TIME)
        return []


def test_every_key_each_lock_script_touches_is_in_the_pipeline_slot(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks(lock_lease=1.0, lock_grant_ttl=1.0, wait_timeout=1.0)
    with ScriptCommands(redisdb.db_url(5)) as seen:
        _drive_every_script(locks)
    functions = scripts.library()[1]
    missing = [name for name in scripts.NAMES
               if hashlib.sha1(scripts.source(name).encode()).hexdigest().encode()
               not in seen.called and functions[name].encode() not in seen.called]
    assert missing == [], "a lock script did not run: the test must cover each one"
    touched = {key for command in seen.commands for key in _keys_of(lock_redis, command)}
    assert len(touched) > 10, sorted(touched)
    slot = key_slot(b"{pipeline}")
    assert {k: key_slot(k) for k in touched if key_slot(k) != slot} == {}


def test_the_result_backend_script_touches_only_the_key_it_is_given(
        lock_redis: redis.Redis) -> None:
    source = resources.files("pipeline.job").joinpath("blocked_state.lua").read_text("utf-8")
    script = lock_redis.register_script(source)
    key = "celery-task-meta-job"
    meta = json.dumps({"status": "BLOCKED", "task_id": "job"})
    with ScriptCommands(redisdb.db_url(5)) as seen:
        script(keys=[key], args=[meta, 60, 1, "host"])
    touched = {k for command in seen.commands for k in _keys_of(lock_redis, command)}
    assert touched == {key.encode()}
