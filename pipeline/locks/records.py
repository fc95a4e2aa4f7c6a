"""The lock engine's records as Redis holds them, each with one parse.

A claim is written ``mode|capacity|resource`` (one per line), a parked job's
record is eight fields joined by :data:`SEP` (``park_read`` in ``lua/lib.lua``),
a hold is a hash (``grant`` in ``lua/lib.lua``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from pipeline.locks.resources import Claim

#: Separator of a parked job's record fields (ASCII unit separator).
SEP = "\x1f"
#: A parked job's rank per priority step (``RANK_STEP`` in lib.lua: 2^44).
RANK_STEP = 1 << 44


@lru_cache(maxsize=4096)
def claims_text(claims: tuple[Claim, ...]) -> str:
    """The claims as the scripts read them: ``mode|capacity|resource`` per line."""
    return "\n".join(f"{c.mode}|{c.capacity}|{c.resource}" for c in claims)


@lru_cache(maxsize=4096)
def resources_text(claims: tuple[Claim, ...]) -> tuple[str, bytes, tuple[str, ...]]:
    """The claims' resource ids as a JSON array (text and bytes) and as a tuple."""
    resources = tuple(c.resource for c in claims)
    text = json.dumps(list(resources), separators=(",", ":"))
    return text, text.encode(), resources


def parse_claims_text(text: str) -> list[Claim]:
    """Inverse of :func:`claims_text`."""
    out = []
    for line in text.splitlines():
        mode, capacity, resource = line.split("|", 2)
        out.append(Claim(resource, mode, int(capacity)))
    return out


@dataclass(frozen=True)
class ParkRecord:
    """A parked job's record as the scripts store it (see ``park_read`` in lib.lua)."""

    rank: int
    since: int
    holder: str
    queue: str
    resource: str
    blocked_by: str
    claims: str
    message: str

    @property
    def priority(self) -> int:
        """The priority it waits at: the rank is ``priority * RANK_STEP`` plus its
        fair-share tag (``fair_rank`` in lib.lua)."""
        return self.rank // RANK_STEP

    @classmethod
    def parse(cls, job_id: str, record: str) -> ParkRecord:
        """Split the record's eight fields (the message, last, may hold anything)."""
        rank, since, holder, queue, resource, by, claims, message = record.split(SEP, 7)
        return cls(int(rank), int(since), holder or job_id, queue, resource, by, claims, message)


@dataclass(frozen=True)
class QueuedMessage:
    """A job found waiting in the broker: its list, that list's number (from 1,
    most urgent first), its place (1 = next to run) and its message as stored."""

    list_key: str
    index: int
    place: int
    message: str


@dataclass(frozen=True)
class HoldRecord:
    """One hold as its record in Redis has it (see ``grant`` in lib.lua).

    Attributes:
        holder: the id the locks are held under (the job, or its workflow).
        job: the job running (or granted, or last run) under the hold.
        state: ``running``, ``granted`` (handed its locks, not started yet) or
            ``between`` (a workflow between two steps).
        claims: every resource of the hold with its mode and capacity.
        token: the grant's fencing token.
        host: worker host of a running hold.
        pid: worker process of a running hold.
        since: when the hold was granted (seconds since the epoch).
        expires: its lease deadline (seconds since the epoch).
    """

    holder: str
    job: str
    state: str
    claims: tuple[Claim, ...]
    token: int
    host: str = ""
    pid: str = ""
    since: float = 0.0
    expires: float = 0.0
