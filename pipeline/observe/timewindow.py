"""Reading the start of a time window as a person writes it: ``30m``, ``2h``, ``7d`` or a date.

Used by ``--since`` options and the API's ``since`` parameters.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from pipeline.errors import InvalidJobError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
ACCEPTED = ("a duration back from now (90s, 30m, 2h, 7d, 1w) or an ISO 8601 date or time "
            "(2026-11-25, 2026-11-25T08:00, naive = UTC)")


def parse_since(text: str, *, now: datetime | None = None, field: str = "since") -> datetime:
    """The aware UTC datetime *text* means.

    Raises:
        InvalidJobError: naming *field*, the value and what is accepted.
    """
    moment = now or datetime.now(timezone.utc)
    match = _AGO.match(text)
    if match:
        return moment - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidJobError(f"{field}={text!r} is not accepted: expected {ACCEPTED}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)
