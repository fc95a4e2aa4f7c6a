"""Job priorities and their parsing.

The pipeline speaks Celery's Redis convention: an int 0-9 where 0 is the most
urgent. The four named levels sit on kombu's Redis priority steps (0, 3, 6, 9),
so every level is one Redis list and a worker drains them strictly in order.
"""

from __future__ import annotations

import enum
from typing import Any

from pipeline.errors import InvalidJobError

#: kombu's Redis transport floors an int priority onto these steps.
PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)


class Priority(enum.IntEnum):
    """The four priority levels, valued as the Redis priority they publish with."""

    CRITICAL = 0
    HIGH = 3
    NORMAL = 6
    LOW = 9

    @property
    def label(self) -> str:
        """Lower-case name, as shown to users (``"high"``)."""
        return self.name.lower()


DEFAULT_PRIORITY = Priority.NORMAL
ACCEPTED = (
    "one of critical, high, normal, low (any case), a Priority, or an int 0-9 (0 = most urgent)"
)


def parse_priority(value: Any, *, field: str = "priority") -> int:
    """Turn a user's priority into the Redis priority int 0-9.

    Args:
        value: a level name in any case, a ``Priority``, or an int 0-9.
        field: the name used in the error message.

    Returns:
        The int 0-9 to publish with.

    Raises:
        InvalidJobError: (a ``ValueError``) naming the field, the value and what
            is accepted.
    """
    if isinstance(value, Priority):
        return int(value)
    if isinstance(value, str):
        member = Priority.__members__.get(value.strip().upper())
        if member is not None:
            return int(member)
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return value
    raise InvalidJobError(f"{field}={value!r} is not accepted: expected {ACCEPTED}")


def of_request(request: object) -> int:
    """The Redis priority a Celery request was delivered at (the default when unset)."""
    value = (getattr(request, "delivery_info", None) or {}).get("priority")
    return int(DEFAULT_PRIORITY) if value is None else int(value)


def level_of(value: int) -> Priority:
    """The named level an int priority 0-9 runs at (kombu floors onto its steps)."""
    return Priority(max(step for step in PRIORITY_STEPS if step <= value))


def from_seed_scale(value: int) -> int:
    """Map the 1-10 scale of older queues (1 = high, 5 = medium, 10 = low) onto a level.

    1-3 run as high, 4-7 as normal (5, their default, included), 8-10 as low;
    that scale had nothing above high, so nothing maps to critical.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
        raise InvalidJobError(f"priority={value!r} is not accepted: expected an int 1-10")
    if value <= 3:
        return int(Priority.HIGH)
    return int(Priority.NORMAL) if value <= 7 else int(Priority.LOW)


def priorities_at(value: Any) -> tuple[int, ...]:
    """Every int priority 0-9 that runs at the level of *value* (``"high"``: 3, 4, 5).

    Raises:
        InvalidJobError: *value* is not a priority (see :func:`parse_priority`).
    """
    level = level_of(parse_priority(value))
    return tuple(p for p in range(10) if level_of(p) == level)
