"""Operator actions: cancel, reprioritize, where a job stands in line; flush, force-release.

A job is in one of three places: in the broker's lists (published, not yet
taken), parked in a resource line, or holding its locks (running, or a
workflow between steps). Each action looks in that order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.actions import pooled
from pipeline.broker.layout import queue_lists
from pipeline.errors import ActionRefused, InvalidJobError
from pipeline.job.release import release_hold
from pipeline.job.revoked import ids_in_message, mark_revoked
from pipeline.locks.resources import KINDS, check_id
from pipeline.messages.envelope import dumps
from pipeline.messages.events import CANCELLED, OPERATOR, emit
from pipeline.messages.header import NAME, JobHeader
from pipeline.priority import PRIORITY_STEPS, Priority, level_of, parse_priority
from pipeline.runtime.services import Services


@dataclass(frozen=True)
class Position:
    """Where a job waits.

    Attributes:
        where: ``queued`` (in the broker), ``parked`` (in a resource line),
            ``running``, ``between`` (a workflow between steps), ``granted``,
            ``delayed`` (a pool job waiting out its countdown or retry backoff)
            or ``unknown`` (finished, or never seen).
        place: 1 = next; for a queued job, jobs ahead of it across all levels;
            for a parked one, its place in the line of what blocks it.
        resource: the resource a parked job waits for.
        priority: the level it waits at, when known.
        queue: the broker queue a queued or delayed job waits in (``pool.NAME``
            for an agent pool's).
    """

    where: str
    place: int = 0
    resource: str = ""
    priority: int | None = None
    queue: str = ""


def position(services: Services, job_id: str, queue: str | None = None) -> Position:
    """Where *job_id* stands: its place among the jobs ahead of it.

    Without *queue*, the default queue's lists are looked in, then every agent pool's.
    """
    locks = services.lock_reads
    found = locks.explain(job_id)
    if found.status == "parked":
        return Position("parked", found.position, found.waiting_for, found.priority)
    if found.status != "unknown":
        return Position(found.status)
    for name in pooled.queues(services, queue):
        queued = locks.queued_position(queue_lists(services.app, name), job_id)
        if queued is not None:
            return Position("queued", queued.place, priority=PRIORITY_STEPS[queued.index - 1],
                            queue=name or services.app.conf.task_default_queue)
    waiting = pooled.delayed(services, job_id) if queue is None else None
    if waiting is not None:
        return Position("delayed", 1, priority=pooled.priority_of(waiting[1]),
                        queue=waiting[0])
    return Position("unknown")


def cancel(services: Services, job_id: str, *, terminate: bool = False,
           reason: str = "cancelled by request", queue: str | None = None) -> str:
    """Cancel a job or a workflow (by its id); returns where it was found.

    A parked or queued job is removed and recorded CANCELLED, and REVOKED in
    the result backend (with the chain steps it would have published, which
    never run now). A running job is revoked, and killed only when *terminate*
    is true. A workflow's remaining
    steps are dropped when they reach a worker and its locks are freed.

    A job an agent claimed is ended whatever *terminate* says (no process here
    can be left running it): its lease and locks go now, and its agent is
    refused at its next call. A pool job waiting out its countdown is taken out.
    """
    reads, actions = services.lock_reads, services.lock_actions
    stored = reads.parked_message(job_id)
    if actions.cancel_parked(job_id, reason):
        mark_revoked(services, ids_in_message(stored) or [job_id], reason)
        return "parked"
    for name in pooled.queues(services, queue):
        queued = actions.take_queued(queue_lists(services.app, name), job_id, reason)
        if queued is not None:
            mark_revoked(services, ids_in_message(queued.message) or [job_id], reason)
            return "queued"
    if pooled.cancel_leased(services, job_id, reason):
        actions.mark_cancelled(job_id)
        return "running"
    if queue is None and pooled.cancel_delayed(services, job_id, reason):
        return "delayed"
    held = reads.explain(job_id)
    # Drop whatever of it may still arrive (a prefetched copy, a workflow's next step).
    actions.mark_cancelled(job_id)
    if held.status == "unknown":
        return "unknown"
    current = held.current_job or job_id
    services.app.control.revoke(current, terminate=terminate)
    if held.status == "between" or terminate:
        release_hold(services.locks, held.holder, current, event=CANCELLED,
                     detail={"reason": reason})
    return held.status


def reprioritize(services: Services, job_id: str, priority: Any, queue: str | None = None) -> str:
    """Move a queued or parked job to *priority*; returns where it was found.

    A parked job takes its project's next turn at its new level (fair share),
    behind the jobs of its project already waiting there. A job still in the
    broker goes to the back of its new level's list (a list cannot be entered
    in the middle).
    """
    new = parse_priority(priority)
    actions = services.lock_actions
    if actions.reprioritize_parked(job_id, new) is not None:
        return "parked"
    for name in pooled.queues(services, queue):
        if _reprioritize_queued(services, queue_lists(services.app, name), job_id, new):
            return "queued"
    return "unknown"


def _reprioritize_queued(services: Services, lists: list[str], job_id: str, new: int) -> bool:
    """Move a job waiting in *lists* to the back of *new*'s list; False if it is not there."""
    target = lists[PRIORITY_STEPS.index(int(level_of(new)))]
    for _ in range(3):  # the message may be taken between the look and the move
        found = services.lock_reads.queued_position(lists, job_id)
        if found is None:
            return False
        message = json.loads(found.message)
        previous = message["properties"].get("priority")
        message["properties"]["priority"] = new
        detail = json.dumps({"priority": new, "previous": previous})
        if services.lock_actions.swap_queued(found, target, dumps(message), detail):
            return True
    return False


#: What ``flush`` takes: messages waiting in the broker, or parked jobs.
FLUSH_STATES = ("queued", "parked")


@dataclass(frozen=True)
class FlushedJob:
    """One job a flush takes (or would take).

    Attributes:
        job_id: the job.
        task: its task name.
        state: ``queued`` (a message in the broker's lists) or ``parked``.
        priority: the level it waited at (for a queued message, the level of the
            list it waited in: a job handed its locks waits in the critical one).
        user: its user, when it has one.
    """

    job_id: str
    task: str
    state: str
    priority: str
    user: str = ""


@dataclass(frozen=True)
class FlushReport:
    """What a flush took, or would take with ``dry_run``."""

    dry_run: bool
    by: str
    priority: str | None
    state: str | None
    jobs: tuple[FlushedJob, ...]

    @property
    def count(self) -> int:
        """How many jobs went (or would go)."""
        return len(self.jobs)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"dry_run": self.dry_run, "by": self.by, "priority": self.priority,
                "state": self.state, "count": self.count,
                "jobs": [job.__dict__ for job in self.jobs]}


def _describe_message(raw: bytes | str) -> tuple[str, str, str, str]:
    """(job id, task, user, workflow id) of a broker message; empty strings if unreadable.

    A guest job's header names its parent's hold too, but only a workflow step
    (its header counts the steps) holds its locks under the workflow's id.
    """
    try:
        headers = json.loads(raw)["headers"]
        job_id, task = str(headers["id"]), str(headers.get("task") or "")
    except (ValueError, KeyError, TypeError):
        return "", "", "", ""
    try:
        header = JobHeader.decode(headers.get(NAME))
    except InvalidJobError:
        return job_id, task, "", ""
    in_workflow = header.steps is not None or header.step is not None
    return job_id, task, header.user or "", (header.workflow or "") if in_workflow else ""


def _message_job(raw: bytes | str, lane: str) -> tuple[FlushedJob, str]:
    """The job of a broker message, and the workflow it is a step of ("" if none)."""
    job_id, task, user, workflow = _describe_message(raw)
    return FlushedJob(job_id, task or "(not a task message)", "queued", lane, user), workflow


def _take_queued(services: Services, level: Priority | None, queue: str | None, dry_run: bool
                 ) -> list[tuple[FlushedJob, str]]:
    """Read (or atomically take) the messages of the chosen levels, next to run first
    (of *queue*, or of the default queue and every agent pool's)."""
    lanes = [(key, Priority(step)) for name in pooled.queues(services, queue)
             for key, step in zip(queue_lists(services.app, name), PRIORITY_STEPS, strict=True)
             if level is None or Priority(step) == level]
    pipe = services.redis.pipeline(transaction=not dry_run)
    for key, _ in lanes:
        pipe.lrange(key, 0, -1)
        if not dry_run:
            pipe.delete(key)
    replies = pipe.execute()
    step = 1 if dry_run else 2
    found = []
    for (_, lane), messages in zip(lanes, replies[::step], strict=True):
        # kombu pops from the right end: the last element runs next.
        found += [_message_job(raw, lane.label) for raw in reversed(messages)]
    return found


def _end_queued(services: Services, taken: list[tuple[FlushedJob, str]], reason: str) -> None:
    """Record the taken messages CANCELLED and free the locks granted to them.

    A job a release handed its locks holds them under its own id; a workflow
    step under its workflow's, which is cancelled with it (its other steps are
    dropped and its hold is not kept between steps).
    """
    ids = [job.job_id for job, _ in taken if job.job_id]
    pipe = services.redis.pipeline(transaction=False)
    for job_id in ids:
        emit(pipe, services.keys.events, CANCELLED, job_id, {"reason": reason},
             maxlen=services.settings.events_maxlen)
    workflows = sorted({workflow for _, workflow in taken if workflow})
    holders = sorted(set(ids) | set(workflows))
    for holder in holders:
        pipe.exists(services.keys.holder(holder))
    held = pipe.execute()[len(ids):]
    # A redelivered copy of a taken message is dropped when it reaches a worker.
    services.lock_actions.mark_cancelled(*ids, *workflows)
    for holder, exists in zip(holders, held, strict=True):
        if not exists:
            continue
        hold = services.lock_reads.explain(holder, holder)
        # Handed its locks, or a workflow between steps: nothing will start under
        # the hold any more. A running hold ends with its job.
        if hold.status in ("granted", "between"):
            release_hold(services.locks, holder, hold.current_job or holder)


def _take_parked(services: Services, level: Priority | None, dry_run: bool, reason: str
                 ) -> list[FlushedJob]:
    """Cancel (or list) the parked jobs of the chosen level, last in line first.

    Taking a job out of a line can only let the jobs behind it run; ending the
    last-ranked first, no job about to be flushed is handed its locks meanwhile.
    """
    chosen = []
    for job_id, record in services.lock_reads.parked_records():
        if level is None or level_of(record.priority) == level:
            chosen.append((record.rank, job_id, record))
    chosen.sort(reverse=True)
    found = []
    for _, job_id, record in chosen:
        if not dry_run and not services.lock_actions.cancel_parked(job_id, reason):
            continue  # started or cancelled meanwhile
        _, task, user, _ = _describe_message(record.message)
        found.append(FlushedJob(job_id, task, "parked", level_of(record.priority).label,
                                user))
    return found[::-1]


def flush(services: Services, *, priority: Any = None, state: str | None = None,
          dry_run: bool = True, by: str = "operator", queue: str | None = None) -> FlushReport:
    """Take every waiting job of a level and/or state out of the system.

    Args:
        services: the services of the app.
        priority: only this level (a name or an int 0-9); None = every level.
        state: ``queued`` (messages in the broker's lists), ``parked``, or None
            for both.
        dry_run: only list what would go (the default).
        by: who asks, for the audit log.
        queue: the queue (default: the app's default queue and every agent pool's).

    Each job taken is recorded ``cancelled`` with the reason "flushed by <by>",
    and the flush itself as one ``operator`` event (``flush``, the count).
    Parked jobs go first, then the broker's lists are emptied atomically; a
    job handed its locks (waiting in the critical list) has them freed.

    Raises:
        InvalidJobError: naming a bad priority or state.
    """
    level = None if priority is None else level_of(parse_priority(priority))
    if state is not None and state not in FLUSH_STATES:
        raise InvalidJobError(f"state={state!r} is not accepted: expected one of "
                              f"{', '.join(FLUSH_STATES)} (or none for both)")
    reason = f"flushed by {by}"
    jobs: list[FlushedJob] = []
    if state in (None, "parked"):
        jobs += _take_parked(services, level, dry_run, reason)
    if state in (None, "queued"):
        taken = _take_queued(services, level, queue, dry_run)
        if not dry_run:
            _end_queued(services, taken, reason)
        jobs += [job for job, _ in taken]
    report = FlushReport(dry_run, by, None if level is None else level.label, state,
                         tuple(jobs))
    if not dry_run:
        target = f"{state or 'queued and parked'} jobs at {report.priority or 'every level'}"
        emit(services.redis, services.keys.events, OPERATOR, "", {
            "action": "flush", "by": by, "target": target, "reason": reason,
            "count": report.count}, maxlen=services.settings.events_maxlen)
    return report


@dataclass(frozen=True)
class EndedHold:
    """A hold a forced release ended: its holder, job, fencing token and resources."""

    holder: str
    job_id: str
    token: int
    resources: tuple[str, ...]


@dataclass(frozen=True)
class ReleaseReport:
    """What ``release_resource`` did."""

    resource: str
    by: str
    reason: str
    ended: tuple[EndedHold, ...]
    handed_to: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"resource": self.resource, "by": self.by, "reason": self.reason,
                "ended": [{**hold.__dict__, "resources": list(hold.resources)}
                          for hold in self.ended],
                "handed_to": list(self.handed_to)}


def check_resource(resource: str) -> str:
    """Validate a resource id: ``user:NAME``, ``project:NAME``, ``model:NAME`` or ``global``.

    Raises:
        InvalidJobError: naming the value and what is accepted.
    """
    kind, _, name = resource.partition(":")
    if resource != "global" and (kind not in KINDS or kind == "global" or not name):
        raise InvalidJobError(
            f"resource={resource!r} is not accepted: expected a resource id such as "
            "user:alice, project:nlp, model:bert or global")
    return check_id("resource", resource)


def release_resource(services: Services, resource: str, *, reason: str,
                     by: str = "operator") -> ReleaseReport:
    """Force-release a stuck lock: end every hold on *resource* and hand it on.

    A hold is all or nothing: each hold ended frees all of its resources, and
    the parked jobs that can now run get them in the same step, as at a normal
    release. The job that held it is not stopped; it finds its lease lost at
    its next renewal (``pipeline.lease_lost()``), and its own release later
    frees nothing. Each hold ended is recorded as a ``lock_lost`` event and an
    ``operator`` event (``lock_release``, *by*, *reason*) of its job.

    Raises:
        InvalidJobError: *resource* is not a resource id (``kind:name`` or ``global``).
        ActionRefused: nobody holds *resource* (nothing was released).
    """
    check_resource(resource)
    holds, handed = services.lock_actions.force_release(resource, by=by, reason=reason)
    ended = tuple(EndedHold(h.holder, h.job, h.token, tuple(c.resource for c in h.claims))
                  for h in holds)
    if not ended and not handed:
        raise not_held(resource)
    return ReleaseReport(resource, by, reason, ended, tuple(handed))


def not_held(resource: str) -> ActionRefused:
    """The error of a release of *resource* that nobody holds (CLI exit 1, API 409)."""
    return ActionRefused(f"nobody holds {resource}: nothing to release "
                         "(`pipeline locks list` shows what is held)")
