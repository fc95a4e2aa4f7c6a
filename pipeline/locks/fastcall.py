"""The hot path's Redis calls: pre-packed FCALL (or EVALSHA) on one connection per thread.

Every job makes two script calls (acquire, release). Going through redis-py's
client for each costs more CPU than the calls themselves on a busy host
(pool checkout, retry wrapper, per-argument encoding). This caller keeps one
connection per thread (a new one after ``fork``), packs the command once,
and can send a call without waiting for its reply: a release is executed by
Redis the moment it arrives, and its reply is read before the next call on
the same connection.

On Redis 7 and newer the scripts are called as functions of one library
(:func:`pipeline.locks.scripts.library`), loaded when the connection is made:
their shared code is then set up once, not on every call. On an older Redis
(the embedded 6.2) they are called as scripts (EVALSHA), loaded the same way.
A restarted Redis breaks the connection, so they are loaded again; a
NOSCRIPT or "function not found" reply all the same (``SCRIPT FLUSH`` or
``FUNCTION FLUSH`` by hand) loads them and sends the call again when the
reply is read.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from hashlib import sha1
from typing import Any

import hiredis
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

logger = logging.getLogger(__name__)
_pack: Callable[[tuple[Any, ...]], bytes] | None = getattr(hiredis, "pack_command", None)


def packed(conn: Any, command: tuple[Any, ...]) -> Any:
    """*command* as *conn*'s ``send_packed_command`` takes it: packed by hiredis in C
    where it can (several times faster than redis-py's packer, whose cost grows with
    the arguments), else by redis-py."""
    return [_pack(command)] if _pack else conn.pack_command(*command)


def load_library(conn: Any, source: str) -> bool:
    """Load a function library (``FUNCTION LOAD REPLACE``) on the connection *conn*; False
    where the server has no functions (Redis < 7)."""
    conn.send_packed_command(packed(conn, ("FUNCTION", "LOAD", "REPLACE", source)))
    try:
        conn.read_response()
    except ResponseError as exc:
        if "unknown command" in str(exc).lower() or "unknown subcommand" in str(exc).lower():
            return False
        raise
    return True


def function_missing(exc: ResponseError) -> bool:
    """Whether *exc* says the function called is not loaded (Redis restarted, or its
    functions were flushed): load the library and call again."""
    return "function not found" in str(exc).lower()


class _Local(threading.local):
    conn: Any = None
    pid: int = 0
    functions: bool = False
    pending: deque[tuple[str, tuple[Any, ...]]]
    unsure: list[tuple[str, tuple[Any, ...]]]

    def __init__(self) -> None:
        self.pending = deque()
        self.unsure = []


class ScriptCaller:
    """Calls named Lua scripts (FCALL or EVALSHA, with one key) with minimal client work.

    Args:
        client: the redis-py client whose connection settings are used.
        sources: script name -> full source, for EVALSHA.
        key: the one key every call declares.
        library: the function library and each script's function name, or
            None to call scripts only.
    """

    def __init__(self, client: redis.Redis, sources: dict[str, str], key: str,
                 library: tuple[str, dict[str, str]] | None = None) -> None:
        self.client = client
        self.sources = sources
        self.shas = {name: sha1(src.encode()).hexdigest() for name, src in sources.items()}
        self.key = key
        self.library = library
        self._local = _Local()

    def _connection(self) -> Any:
        local = self._local
        if local.conn is None or local.pid != os.getpid():
            if local.pid != os.getpid():
                local.unsure.clear()  # a forked child: those calls were its parent's
                local.conn = None
            conn = self.client.connection_pool.make_connection()
            # Connected here, not by the first send: a Sentinel-managed
            # connection finds the current primary in connect(), which a send
            # on an unconnected connection would skip (it would go to its
            # default address, localhost:6379). A failed connect keeps nothing.
            connect: Any = conn.connect  # redis-py leaves it untyped
            connect()
            local.conn = conn
            local.pid = os.getpid()
            local.pending.clear()
            # Load everything now: a call sent without waiting must not meet
            # NOSCRIPT, whose reply would only be read at this thread's next call.
            local.functions = self._load_library(local.conn)
            if not local.functions:
                for name in self.sources:
                    self._load(local.conn, name)
            # Calls sent without waiting on a connection that then broke may not
            # have run: send them again (only idempotent calls are sent so).
            while local.unsure:
                name, args = local.unsure.pop(0)
                self._send(local.conn, name, args)
                local.pending.append((name, args))
        return local.conn

    def _send(self, conn: Any, name: str, args: Sequence[Any]) -> None:
        if self._local.functions and self.library is not None:
            command = ("FCALL", self.library[1][name], 1, self.key, *args)
        else:
            command = ("EVALSHA", self.shas[name], 1, self.key, *args)
        # hiredis packs in C, a few times faster than redis-py's own packer.
        conn.send_packed_command(packed(conn, command), check_health=False)

    def _load(self, conn: Any, name: str) -> None:
        conn.send_packed_command(conn.pack_command("SCRIPT", "LOAD", self.sources[name]))
        conn.read_response()

    def _load_library(self, conn: Any) -> bool:
        """Load the function library; False where the server has no functions (Redis < 7)."""
        return self.library is not None and load_library(conn, self.library[0])

    def _read(self, conn: Any, name: str, args: Sequence[Any]) -> Any:
        try:
            return conn.read_response()
        except NoScriptError:
            self._load(conn, name)
        except ResponseError as exc:
            if not function_missing(exc):
                raise
            self._load_library(conn)
        self._send(conn, name, args)
        return conn.read_response()

    def _settle(self, conn: Any) -> None:
        """Read the replies of calls sent without waiting (and redo any NOSCRIPT one)."""
        pending = self._local.pending
        while pending:
            name, args = pending[0]
            try:
                self._read(conn, name, args)
            except ResponseError:
                logger.exception("lock script %s failed (sent without waiting)", name)
            pending.popleft()

    def _on_connection(self, action: Callable[[Any], Any]) -> Any:
        """Run *action* on this thread's connection; on a broken one, once more on a new one."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                self._settle(conn)
                return action(conn)
            except (RedisConnectionError, OSError):
                self._reset(conn)
                if attempt == 2:
                    raise
            except BaseException:
                # Interrupted between sending and reading (a soft time limit, a
                # signal): the connection's replies can no longer be matched.
                self._reset(conn)
                raise
        raise AssertionError("unreachable")

    def call(self, name: str, args: Sequence[Any]) -> Any:
        """Run script *name* and return its reply."""

        def run(conn: Any) -> Any:
            self._send(conn, name, args)
            return self._read(conn, name, args)

        return self._on_connection(run)

    def send(self, name: str, args: Sequence[Any]) -> None:
        """Run script *name* without waiting for its reply (read before the next call).

        Only for idempotent scripts: after a broken connection it is sent again.
        A call that could not be sent at all (Redis is away) is kept too and
        sent first on the next connection, before the error is raised: the
        caller's repeats need not carry what only the first call may do once
        (its event).
        """
        call = (name, tuple(args))

        def run(conn: Any) -> None:
            # No reply is due now (the pending ones were just read): anything to
            # read means the server closed the connection (it crashed or
            # restarted). Writing to it would succeed locally and the call
            # would be lost until this thread's next call: make a new one.
            if conn.can_read(timeout=0):
                raise RedisConnectionError("the connection was closed by the server")
            # Counted before it is sent, so an interruption cannot leave an
            # unaccounted reply on the connection.
            self._local.pending.append(call)
            self._send(conn, name, args)

        try:
            self._on_connection(run)
        except (RedisConnectionError, OSError):
            local = self._local
            if local.pid != os.getpid():
                local.unsure.clear()  # a forked child's first call: those were its parent's
                local.pid = os.getpid()
            if call not in local.pending and call not in local.unsure:
                local.unsure.append(call)
            raise

    def wait_replicas(self, replicas: int, timeout_ms: int) -> int:
        """Redis ``WAIT`` on this thread's connection: how many replicas have its writes."""

        def run(conn: Any) -> int:
            conn.send_packed_command(conn.pack_command("WAIT", replicas, timeout_ms))
            return int(conn.read_response())

        return int(self._on_connection(run))

    def flush(self) -> None:
        """Read every outstanding reply now (tests, shutdown)."""
        conn = self._local.conn
        if conn is not None and self._local.pid == os.getpid():
            self._settle(conn)

    def _reset(self, conn: Any) -> None:
        conn.disconnect()
        self._local.conn = None
        self._local.unsure.extend(self._local.pending)
        self._local.pending.clear()
