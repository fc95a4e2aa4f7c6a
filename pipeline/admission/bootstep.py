"""The worker's load gate and load heartbeat: a Celery consumer bootstep.

A thread of the worker's main process reads the host's load every half
second (:class:`LoadMonitor`), publishes the worker's load record every
``pipeline_agent_heartbeat`` seconds and decides, with hysteresis, whether the
worker should take new jobs. The event loop applies that decision
(:class:`LoadGate`): it stops consuming by cancelling the consumer of each task
queue, and resumes by consuming them again.

Why cancelling the queue consumers: it is what ``celery control
cancel_consumer`` does, and on Redis it stops the worker from taking new
messages at once. Lowering the prefetch count cannot: kombu's Redis
transport keeps the reply of a BRPOP already sent while it has no credit, so
a message it popped would stay in that worker's socket, unacknowledged and
invisible to other workers, for as long as the pause lasts. Messages already
delivered to the worker are untouched: they are in the unacked index and
run in their turn, like the jobs running now. The pipeline's transport takes
nothing for a cancelled queue (:mod:`pipeline.broker.fetch`); should a message
reach a cancelled queue's consumer all the same, it goes back to the front of
its list (kombu alone would push it to the back) and is no longer recorded as
taken.
"""

from __future__ import annotations

import collections
import os
import socket
import threading
import time
from typing import Any

from celery import bootsteps
from celery.utils.log import get_logger
from celery.worker import state

from pipeline import conf
from pipeline.admission.agents import AgentStatus, publish, withdraw
from pipeline.admission.gate import Hysteresis, LoadLimits, Transition
from pipeline.admission.load import HostSampler, LoadReading, host_cpu_average, queue_depth
from pipeline.messages.events import MAINTENANCE, emit
from pipeline.runtime.services import Services, services_for

logger = get_logger(__name__)

#: Seconds between two readings of the host's load.
SAMPLE_EVERY = 0.5
#: Seconds between two checks of the event loop for a decision to apply.
APPLY_EVERY = 0.25
#: Seconds a pause or a resume holds at least (or the smoothing time, if longer).
MIN_DWELL = 2.0


class LoadMonitor:
    """The load of one worker: read in a thread, published, turned into a gate decision.

    The event loop reads :attr:`wants_pause` and reports what it did with
    :meth:`applied`; everything that talks to Redis happens in the thread.
    """

    def __init__(self, app: Any, name: str, slots: Any, queues: tuple[str, ...]) -> None:
        self.app = app
        self.name = name
        self._slots = slots
        self.queues = queues
        settings = conf.read(app.conf)
        self.settings = settings
        self.sampler = HostSampler(settings.load_smoothing, seed=host_cpu_average())
        self.hysteresis = Hysteresis(LoadLimits.from_settings(settings),
                                     dwell=max(MIN_DWELL, settings.load_smoothing))
        self.gate = settings.load_gate
        self.started_at = time.time()
        self.paused_since: float | None = None
        self.pause_reason = ""
        self.reading = LoadReading(0.0, self.sampler.memory, 0.0)
        self._applied: collections.deque[Transition] = collections.deque()
        self._next_publish = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def services(self) -> Services:
        """The services of the worker's app in this process (the worker's main process)."""
        return services_for(self.app)

    @property
    def wants_pause(self) -> bool:
        """Whether the host is over a limit (with hysteresis) and the gate is on."""
        return self.gate and self.hysteresis.paused

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pipeline-load", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and withdraw the worker's record."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self.settings.agent_heartbeat > 0:
            try:
                withdraw(self.services.redis, self.services.keys, self.name)
            except Exception:  # shutting down: the record expires on its own
                logger.warning("pipeline: could not withdraw the load record of %s", self.name)

    def applied(self, transition: Transition) -> None:
        """Called by the event loop once it paused or resumed consuming."""
        if transition.action == "pause":
            self.paused_since, self.pause_reason = time.time(), transition.reason
            logger.warning("pipeline load gate: worker %s stops taking new jobs: %s "
                           "(running jobs go on)", self.name, transition.reason)
        else:
            self.paused_since, self.pause_reason = None, ""
            logger.warning("pipeline load gate: worker %s takes new jobs again: %s",
                           self.name, transition.reason)
        self._applied.append(transition)

    def status(self) -> AgentStatus:
        """The worker's record as of the last reading."""
        slots = int(self._slots() or 1)
        reserved = len(state.reserved_requests)
        reading = LoadReading(self.reading.cpu, self.reading.memory,
                              queue_depth(reserved, slots))
        return AgentStatus.measured(
            self.name, socket.gethostname(), os.getpid(), slots, len(state.active_requests),
            reserved, reading, accepting=self.paused_since is None,
            pause_reason=self.pause_reason, paused_since=self.paused_since, gate=self.gate,
            queues=self.queues, started_at=self.started_at)

    def tick(self) -> None:
        """One reading; publish the record when due or after a pause or resume."""
        cpu, memory = self.sampler.sample()
        self.reading = LoadReading(cpu, memory, 0.0)
        if self.gate:
            self.hysteresis.update(cpu, memory, time.monotonic())
        services = self.services
        changed = False
        while self._applied:
            transition = self._applied.popleft()
            changed = True
            emit(services.redis, services.keys.events, MAINTENANCE, "",
                 {"action": f"gate_{transition.action}", "worker": self.name,
                  "reason": transition.reason}, maxlen=self.settings.events_maxlen)
        heartbeat = self.settings.agent_heartbeat
        if heartbeat > 0 and (changed or time.monotonic() >= self._next_publish):
            self._next_publish = time.monotonic() + heartbeat
            publish(services.redis, services.keys, self.status(), self.settings.agent_timeout)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            try:
                self.tick()
            except Exception:  # a Redis blip must not end the heartbeat
                logger.exception("pipeline: load reading or record failed; trying again")


class LoadGate(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep: the worker's load record and its load gate.

    Added to every pipeline app by :func:`pipeline.app.install.install`; on when
    ``pipeline_load_gate`` is true or ``pipeline_agent_heartbeat`` is above 0.
    """

    label = "PipelineLoadGate"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        settings = conf.read(c.app.conf)
        self.enabled = settings.load_gate or settings.agent_heartbeat > 0
        self.monitor: LoadMonitor | None = None
        self.paused = False
        self._held: list[Any] = []
        c.pipeline_load_gate = self
        super().__init__(c, **kwargs)

    def start(self, c: Any) -> None:
        """Start reading the load (once); a (re)started consumer consumes every queue."""
        self.paused, self._held = False, []
        if self.monitor is None:
            queues = tuple(q.name for q in c.task_consumer.queues) if c.task_consumer else ()
            self.monitor = LoadMonitor(
                c.app, c.hostname,
                lambda: getattr(c.pool, "num_processes", None) or c.controller.concurrency,
                queues)
            self.monitor.start()
        if c.hub is None and self.monitor.gate:
            logger.warning("pipeline load gate: this worker runs without an event loop; it "
                           "publishes its load but does not pause")

    def register_with_event_loop(self, c: Any, hub: Any) -> None:
        """Check the monitor's decision from the event loop, where the consumer lives."""
        hub.call_repeatedly(APPLY_EVERY, self.apply, c)

    def apply(self, c: Any) -> None:
        """Pause or resume consuming to match the monitor's decision."""
        monitor = self.monitor
        if monitor is None or c.task_consumer is None or monitor.wants_pause == self.paused:
            return
        if monitor.wants_pause:
            self._pause(c.task_consumer)
        else:
            self._resume(c.task_consumer)
        monitor.applied(Transition("pause" if self.paused else "resume",
                                   monitor.hysteresis.reason))

    def _pause(self, consumer: Any) -> None:
        self._held = list(consumer.queues)
        for queue in self._held:
            consumer.cancel_by_queue(queue.name)
            _put_back_late_messages(consumer.channel, queue.name)
        self.paused = True

    def _resume(self, consumer: Any) -> None:
        for queue in self._held:
            consumer.add_queue(queue)
        consumer.consume()
        self._held = []
        self.paused = False

    def shutdown(self, c: Any) -> None:
        """Stop reading the load and withdraw the worker's record."""
        if self.monitor is not None:
            self.monitor.stop()
            self.monitor = None


def _put_back_late_messages(channel: Any, queue: str) -> None:
    """Return a message popped by a BRPOP sent before the cancel to the front of its list.

    Without a consumer for the queue, kombu rejects such a message with
    requeue, which pushes it to the back of its list: behind jobs published
    after it. Only for the Redis transport; elsewhere kombu's own handling stays.
    """
    transport = getattr(channel, "connection", None)
    callbacks = getattr(transport, "_callbacks", None)
    restore = getattr(channel, "_do_restore_message", None)
    if not isinstance(callbacks, dict) or restore is None or queue in callbacks:
        return

    def put_back(payload: dict[str, Any]) -> None:
        properties = payload.get("properties") or {}
        info = properties.get("delivery_info") or {}
        with channel.conn_or_acquire() as client:
            pipe = client.pipeline()
            restore(payload, info.get("exchange", ""), info.get("routing_key") or queue, pipe,
                    leftmost=False)
            tag = properties.get("delivery_tag")
            if tag is not None and hasattr(channel.qos, "_remove_from_indices"):
                # Its fetch recorded it as taken: back in its list, it is taken no more.
                channel.qos._remove_from_indices(tag, pipe)
            pipe.execute()
        logger.info("pipeline load gate: a message popped while pausing went back to the "
                    "front of queue %s", queue)

    callbacks[queue] = put_back
