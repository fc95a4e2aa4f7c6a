"""Taking a message and recording it as taken, in one step: no kill can lose it in between.

kombu's Redis transport takes a message with ``BRPOP`` and writes its record in
the ``unacked`` hash (delivery tag -> message) only once the message has
reached the consumer. A worker killed between the two (``kill -9``, the OOM
killer, a lost host) has popped a message that no record knows: the job is
gone. Under load the gap is the time the worker's event loop takes to get to
the reply, and a fault run of twenty whole-worker kills hit it.

Here a worker never pops a queue list itself:

* Every push of a message onto a queue list also pushes a token onto the
  queue's **wake list** (:func:`pipeline.keys.wake_key`): the transport's
  publish (:func:`push`), kombu's restores, the lock scripts' hand-off and a
  dead letter's requeue.
* An idle worker blocks on its queues' wake lists (``BRPOP``, where kombu
  blocks on the queue lists). Woken, and every ``brpop_timeout`` seconds when
  not, it runs ``fetch.lua`` (:class:`Fetcher`): one Lua call that moves the
  next message, most urgent level first, from its list into the ``unacked``
  hash and index, the record kombu would have written. The fetch is sent with
  the wait, behind it on the same connection: Redis runs it the moment the wait
  returns, so the message arrives with its token, no round trip later.

A kill at any moment leaves the message in its list or in its record, which
the visibility timeout hands to another worker. A token is a hint only: one
lost with a killed worker delays the next message by at most ``brpop_timeout``
(1 s), a stale one costs a look that finds nothing (and clears the stale
tokens). A message pushed without a token (a client that is not the pipeline's
transport, an operator's ``LPUSH``) is taken the same way, at the latest on an
idle worker's next timeout; while its list holds more, the fetch leaves a
token for the next worker.

With parking in the fetch (:mod:`pipeline.broker.parking`) the same call parks
the jobs whose resources are visibly held, taking the next message after each,
up to a limit per call; a parked message's token goes with it.

A busy worker skips the wait: when a fetch took a message and left more in the
lists, the channel sends the next fetch alone, in place of the ``BRPOP``
(:meth:`Fetcher.command`, the message it takes takes its token with it), and
the acknowledgements given since ride in the same call (kombu sends each on
its own). While the queues hold more, a message costs the worker's main
process one round trip instead of three. On Redis 7 and newer the fetch is a
function (:func:`library`), its shared Lua set up once; a script on Redis 6.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from hashlib import sha1
from importlib import resources
from typing import Any

import redis

from pipeline.broker.parking import OFF_ARGS, FetchParked, FetchParking, parse
from pipeline.keys import lua_wake, wake_key
from pipeline.locks.fastcall import function_missing, load_library, packed
from pipeline.locks.scripts import lib_source


def _lua(name: str) -> str:
    return resources.files("pipeline.broker").joinpath(name).read_text("utf-8")


@cache
def _source(parking: bool) -> str:
    """``fetch.lua``; with *parking*, after the key table, ``lib.lua`` and ``park.lua``."""
    if parking:
        return lib_source() + _lua("park.lua") + "\n" + _lua("fetch.lua")
    return lua_wake() + _lua("fetch.lua")


@cache
def library() -> tuple[str, str]:
    """The fetch as a Redis function library (``FUNCTION LOAD``) and the function's name.

    As a script, the key table, ``lib.lua`` and ``park.lua`` are defined again on
    every call; as a function, once when the library is loaded. The name carries a
    digest of the code, so workers of two releases can share one Redis.
    """
    prelude, body = lib_source() + _lua("park.lua") + "\n", _lua("fetch.lua")
    name = "pipeline_fetch_" + sha1((prelude + body).encode()).hexdigest()[:12]
    return (f"#!lua name={name}\n{prelude}"
            f"redis.register_function('{name}', function(KEYS, ARGV)\n{body}\nend)\n", name)


@dataclass(frozen=True)
class Served:
    """The lists one fetch looks at, in the order they are served.

    Attributes:
        queues: the queue of each list.
        keys: KEYS of ``fetch.lua`` (unacked hash, unacked index, queue lists, wake lists).
        args: the ARGV after *now*: list count, record flags, wake list positions.
    """

    queues: tuple[str, ...]
    keys: tuple[str, ...]
    args: tuple[str | int, ...]


def served(prefix: str, unacked: str, index: str, lists: Sequence[tuple[str, str, bool]]
           ) -> Served:
    """The fetch's keys for *lists*: ``(queue, list name, acknowledged)`` in serving order.

    Names are kombu's (without *prefix*, its ``global_keyprefix``).
    """
    wakes: list[str] = []
    positions = []
    for queue, _, _ in lists:
        wake = prefix + wake_key(queue)
        if wake not in wakes:
            wakes.append(wake)
        positions.append(3 + len(lists) + wakes.index(wake))
    keys = (prefix + unacked, prefix + index, *(prefix + name for _, name, _ in lists), *wakes)
    flags = ["1" if acked else "0" for _, _, acked in lists]
    return Served(tuple(queue for queue, _, _ in lists), keys, (len(lists), *flags, *positions))


@dataclass(frozen=True)
class Fetched:
    """A message taken off a queue list.

    Attributes:
        queue: the queue it was taken from.
        item: the list item, as it was pushed.
        tag: its delivery tag when it was recorded as taken, else ``""`` (a
            consumer without acknowledgements, or an item no kombu message).
        source: the list it was taken from (its full name).
    """

    queue: str
    item: bytes
    tag: str
    source: str


@dataclass(frozen=True)
class Taken:
    """What one fetch did.

    Attributes:
        message: the message to deliver, None when there is none.
        parked: the jobs it parked first (:mod:`pipeline.broker.parking`).
        more: it stopped at its parking limit with messages left: call again.
        left: a message was delivered and the lists hold more: the next fetch
            need not wait for a wake token.
    """

    message: Fetched | None
    parked: list[FetchParked]
    more: bool
    left: bool


class Fetcher:
    """Runs ``fetch.lua`` on a plain client of the broker's connection pool.

    With *parking*, the fetch parks jobs whose resources are visibly held.
    """

    def __init__(self, client: redis.Redis, parking: FetchParking | None = None) -> None:
        self.client = client
        self._script = client.register_script(_source(parking is not None))
        self._parking_args = OFF_ARGS if parking is None else parking.args()
        #: The function's name where Redis has functions (7 and newer) and it is loaded;
        #: "" where it has none (the script is called); None until the first fetch.
        self._function: str | None = None

    def _load(self) -> str:
        """Load the function library; "" where the server has no functions."""
        source, name = library()
        with _borrowed(self.client.connection_pool) as connection:
            return name if load_library(connection, source) else ""

    def take(self, lists: Served) -> Fetched | None:
        """The next message of *lists*, recorded as taken; None when they are all empty."""
        return self.take_or_park(lists).message

    def take_or_park(self, lists: Served) -> Taken:
        """Park what waits for held resources, then take the next message, recorded as taken."""
        args = self._args(lists, (), ahead=False)
        if self._function is None:
            self._function = self._load()
        if not self._function:
            return self.read(lists, self._script(keys=lists.keys, args=args, client=self.client))
        try:
            reply = call(self.client.connection_pool,
                         ("FCALL", self._function, len(lists.keys), *lists.keys, *args))
        except redis.ResponseError as exc:
            if not function_missing(exc):
                raise
            # Redis restarted or its functions were flushed: load them again.
            self._function = self._load()
            return self.take_or_park(lists)
        return self.read(lists, reply)

    @property
    def ready(self) -> bool:
        """Whether the fetch's function or script is loaded (after the first fetch)."""
        return self._function is not None

    def command(self, lists: Served, acks: Sequence[str], *, ahead: bool = True
                ) -> tuple[Any, ...]:
        """The fetch as a command to send without waiting (``FCALL`` or ``EVALSHA``),
        acknowledging *acks* first; its reply is read by :meth:`read`. *ahead*: sent in
        place of the wait on the wake lists (the message takes its token), else behind it.

        The function or script must be loaded (:meth:`take_or_park` loads it); an error
        reply (``NOSCRIPT``, function not found) means it was not, and nothing was done.
        """
        head = ("FCALL", self._function) if self._function else ("EVALSHA", self._script.sha)
        return (*head, len(lists.keys), *lists.keys, *self._args(lists, acks, ahead=ahead))

    def _args(self, lists: Served, acks: Sequence[str], *, ahead: bool
              ) -> tuple[Any, ...]:
        return (time.time(), *lists.args, "1" if ahead else "0", len(acks), *acks,
                *self._parking_args)

    @staticmethod
    def read(lists: Served, reply: Any) -> Taken:
        """What the fetch's *reply* says it did."""
        index, item, tag, parked, more, left = reply
        found = None
        if int(index):
            found = Fetched(lists.queues[int(index) - 1], bytes(item),
                            tag.decode() if isinstance(tag, bytes) else str(tag),
                            lists.keys[1 + int(index)])
        return Taken(found, parse(parked) if parked else [], bool(int(more)), bool(int(left)))

    def forget(self, lists: Served, tag: str) -> None:
        """Remove the record of a message taken off *lists* but not delivered (set aside)."""
        unacked, index = lists.keys[:2]
        pipe = self.client.pipeline()
        pipe.hdel(unacked, tag)
        pipe.zrem(index, tag)
        pipe.execute()


def _connection(pool: redis.ConnectionPool) -> Any:
    try:
        return pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants a command name
        return pool.get_connection("_")  # type: ignore[call-arg,unused-ignore]


@contextlib.contextmanager
def _borrowed(pool: redis.ConnectionPool) -> Iterator[Any]:
    """A connection of *pool*, given back after; dropped if anything went wrong on it (a
    reply left unread would be taken for the next command's)."""
    connection = _connection(pool)
    try:
        yield connection
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def push(pool: redis.ConnectionPool, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Send *commands* (full key names) in one round trip, e.g. a message and its token;
    their replies.

    Cheaper than a redis-py pipeline on the publish path (packed in C, no client), and
    like one, not a transaction: the token follows the message, so a worker it wakes
    finds it.
    """
    with _borrowed(pool) as connection:
        connection.send_packed_command(
            [chunk for command in commands for chunk in packed(connection, command)])
        return [connection.read_response() for _ in commands]


def call(pool: redis.ConnectionPool, command: tuple[Any, ...]) -> Any:
    """Send one *command* on a connection of *pool* and return its reply (:func:`push`)."""
    return push(pool, [command])[0]
