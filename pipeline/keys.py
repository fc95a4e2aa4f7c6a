"""Every Redis key name of the pipeline, from one place.

All keys carry the same hash tag (``{pipeline}`` by default) so that every key
one Lua script touches maps to one Redis Cluster slot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names under one hash tag.

    A *resource id* is ``kind:name`` (``user:alice``, ``model:bert``) or
    ``global``. A *holder* is the id locks are held under: the job id, or the
    workflow id for every step of a workflow.
    """

    prefix: str = "pipeline"

    @property
    def tag(self) -> str:
        """The ``{prefix}`` hash tag every key starts with."""
        return "{" + self.prefix + "}"

    @property
    def base(self) -> str:
        """The tag plus separator: the start of every key, as the Lua scripts build them."""
        return self.tag + ":"

    def writers(self, resource: str) -> str:
        """Sorted set of exclusive holders of *resource*, scored by lease deadline (ms)."""
        return f"{self.base}res:{resource}:w"

    def readers(self, resource: str) -> str:
        """Sorted set of shared (read) holders of *resource*, scored by lease deadline."""
        return f"{self.base}res:{resource}:r"

    def line(self, resource: str) -> str:
        """Sorted set of jobs parked behind *resource*, scored by rank."""
        return f"{self.base}line:{resource}"

    def holder(self, holder: str) -> str:
        """Hash describing what *holder* holds: resources, tokens, host, pid, times."""
        return f"{self.base}hold:{holder}"

    def parked(self, job_id: str) -> str:
        """String record of a parked job: rank, resources, stored message, what blocks it."""
        return f"{self.base}park:{job_id}"

    @property
    def fence(self) -> str:
        """Hash resource id -> last fencing token issued."""
        return f"{self.base}fence"

    @property
    def parked_count(self) -> str:
        """Hash priority level -> number of parked jobs."""
        return f"{self.base}parked:count"

    @property
    def parked_kinds(self) -> str:
        """Hash resource kind -> parked jobs whose first blocking resource is of that kind."""
        return f"{self.base}parked:kinds"

    @property
    def parked_order(self) -> str:
        """List of ``<parked-at ms>|<job id>``, oldest first, for expiry without a scan."""
        return f"{self.base}parked:order"

    @property
    def holders(self) -> str:
        """Sorted set holder -> lease deadline (ms): every live hold, for listing and sweeps."""
        return f"{self.base}holders"

    @property
    def cancelled(self) -> str:
        """Sorted set job or workflow id -> cancelled-at (ms): dropped when they reach a worker."""
        return f"{self.base}cancelled"

    @property
    def events(self) -> str:
        """The event stream every state change is written to."""
        return f"{self.base}events"

    @property
    def dead_letters(self) -> str:
        """Sorted set job id -> dead-lettered-at (ms)."""
        return f"{self.base}dlq"

    def dead_letter(self, job_id: str) -> str:
        """Hash of one dead-lettered job: its message and last error."""
        return f"{self.base}dlq:{job_id}"

    def broker_queue_prefix(self) -> str:
        """kombu's ``global_keyprefix``: puts the broker's lists under the same tag."""
        return self.base

    @property
    def imported(self) -> str:
        """Hash request id -> job id of the requests ``pipeline import`` has enqueued."""
        return f"{self.base}imported"

    @property
    def agents(self) -> str:
        """Sorted set worker name -> time of its last load record (ms): the agents' index."""
        return f"{self.base}agents"

    def agent(self, worker: str) -> str:
        """String (JSON) of one worker's load record; expires with ``pipeline_agent_timeout``."""
        return f"{self.base}agent:{worker}"
