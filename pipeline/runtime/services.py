"""The per-process handle of one app: its settings, keys, Redis client and running jobs.

Created lazily on first use and dropped in a forked child, so no connection
pool crosses a ``fork`` (prefork pool, ``worker_process_init``).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

import redis

from pipeline import conf
from pipeline.conf import broker_redis_url
from pipeline.keys import Keys
from pipeline.runtime.redisurl import client_for
from pipeline.runtime.running import RunningJobs

if TYPE_CHECKING:
    from celery import Celery

    from pipeline.locks.heartbeat import Heartbeat
    from pipeline.locks.protocols import HotPath, Leases, LockActions, LockEngine, LockReads
    from pipeline.messages.emitter import BufferedEmitter

logger = logging.getLogger(__name__)
_SERVICES: dict[int, Services] = {}
_LOCK = threading.Lock()


class Services:
    """Settings, keys, the Redis client and the lock engine of one app in this process.

    Made once per process by :func:`services_for` at the edges (a task's hooks,
    a worker's bootsteps, a command, a route) and passed to what they call.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.settings = conf.read(app.conf)
        self.keys = Keys(self.settings.redis_prefix)
        self.pid = os.getpid()
        #: The jobs this process runs under a hold (see :mod:`pipeline.runtime.running`).
        self.running = RunningJobs()
        self._redis: redis.Redis | None = None
        self._locks: LockEngine | None = None
        self._leases: Leases | None = None
        self._heartbeat: Heartbeat | None = None
        self._emitter: BufferedEmitter | None = None
        self._dispatcher: Any = None

    @property
    def redis(self) -> redis.Redis:
        """A client on the broker's Redis (the locks live beside the queues).

        The first one of each process logs which broker it is and where that
        came from (a warning when nothing was configured).
        """
        if self._redis is None:
            url = broker_redis_url(self.app)
            _log_broker_once(str(self.app.conf.broker_url or url))
            self._redis = client_for(url, self.settings.master_name)
        return self._redis

    @property
    def engine(self) -> LockEngine:
        """The lock engine (made on first use); callers take the protocol of their kind."""
        if self._locks is None:
            from pipeline.locks.engine import RedisLockEngine

            self._locks = RedisLockEngine(self.redis, self.keys, self.settings)
        return self._locks

    @property
    def locks(self) -> HotPath:
        """The lock engine as a job's own path uses it: acquire, release, renew, sweep."""
        return self.engine

    @property
    def lock_reads(self) -> LockReads:
        """The lock engine as the read-only views use it."""
        return self.engine

    @property
    def lock_actions(self) -> LockActions:
        """The lock engine as operators and the beat sweep use it."""
        return self.engine

    @property
    def leases(self) -> Leases:
        """The claims of agent pools and the leases of claimed jobs (:mod:`pipeline.remote`)."""
        if self._leases is None:
            from pipeline.locks.leases import RedisLeases

            self._leases = RedisLeases(self.redis, self.keys, self.settings)
        return self._leases

    @property
    def heartbeat(self) -> Heartbeat:
        """The lease-renewing thread of this process (started on first use)."""
        if self._heartbeat is None:
            from pipeline.locks.heartbeat import Heartbeat

            self._heartbeat = Heartbeat(self.locks, self.settings.heartbeat,
                                        lease=self.settings.lease)
        return self._heartbeat

    @property
    def emitter(self) -> BufferedEmitter:
        """The buffered writer of ``queued`` events of this process."""
        if self._emitter is None:
            from pipeline.messages.emitter import BufferedEmitter

            self._emitter = BufferedEmitter(self.redis, self.keys.events,
                                            self.settings.events_maxlen)
        return self._emitter


    def send_task_event(self, event_type: str, hostname: str | None, **fields: Any) -> None:
        """Send a Celery task event (Flower) through one long-lived dispatcher."""
        if not self.app.conf.worker_send_task_events:
            return
        if self._dispatcher is None:
            self._dispatcher = self.app.events.Dispatcher(
                self.app.connection_for_write(), hostname=hostname, enabled=True)
        self._dispatcher.send(event_type, **fields)


_LOGGED: set[tuple[int, str]] = set()


def _log_broker_once(url: str) -> None:
    if (os.getpid(), url) in _LOGGED:
        return
    _LOGGED.add((os.getpid(), url))
    from pipeline.runtime.broker import describe
    from pipeline.runtime.checks import redact

    source = describe(url)
    level = logging.WARNING if source.startswith("the default") else logging.INFO
    logger.log(level, "pipeline: broker %s, from %s", redact(url), source)


def services_for(app: Any) -> Services:
    """The services of *app* in this process (a new one after ``fork``)."""
    key = id(app)
    services = _SERVICES.get(key)
    if services is None or services.pid != os.getpid():
        with _LOCK:
            services = _SERVICES.get(key)
            if services is None or services.pid != os.getpid():
                services = Services(app)
                _SERVICES[key] = services
    return services


def _forget_after_fork() -> None:
    _SERVICES.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
