"""The Redis ACL of the pipeline's user: least privilege, stated once.

Every process of the pipeline (workers, beat, the recorder, the CLI, the API,
metrics, Flower, the result backend) works as a Redis user limited to

* **keys**: the pipeline's hash tag (``{pipeline}*``: locks, parked jobs,
  events, and the broker's lists, bindings and unacknowledged messages, all
  under kombu's ``global_keyprefix``) and the Redis result backend's keys
  (``celery-task-meta-*``, ``celery-taskset-meta-*``, ``chord-unlock-*``);
* **channels**: all (``&*``). kombu's fanout exchanges (task events, remote
  control) subscribe with patterns, which Redis allows only when the pattern
  itself is listed; channels carry notices, never stored data;
* **commands**: everything but Redis's ``@dangerous`` category (no
  ``FLUSHALL``, ``KEYS``, ``CONFIG SET``, ``DEBUG``, ``SHUTDOWN``, ``ACL``,
  replication or cluster administration), plus the two reads ``pipeline
  check`` makes: ``INFO`` and ``CONFIG GET`` (of ``maxmemory-policy``).

:func:`acl_rules` is what the docs show and what the tests give a Redis user.
"""

from __future__ import annotations

from pipeline.keys import Keys

#: Key patterns of Celery's Redis result backend.
RESULT_KEYS = ("celery-task-meta-*", "celery-taskset-meta-*", "chord-unlock-*")
#: Commands: all but the dangerous ones, and the reads of `pipeline check`.
COMMANDS = ("+@all", "-@dangerous", "+info", "+config|get")
CHANNELS = ("resetchannels", "&*")


def acl_rules(prefix: str = "pipeline") -> tuple[str, ...]:
    """The ACL rules of the pipeline's user for the ``pipeline_redis_prefix`` *prefix*."""
    keys = Keys(prefix)
    return ("resetkeys", f"~{keys.tag}*", *(f"~{k}" for k in RESULT_KEYS), *CHANNELS,
            *COMMANDS)


def acl_line(user: str = "pipeline", password: str = "<password>",
             prefix: str = "pipeline") -> str:
    """The ``redis.conf`` line (or ``ACL SETUSER`` arguments) of the pipeline's user."""
    return " ".join(("user", user, "on", f">{password}", *acl_rules(prefix)))
