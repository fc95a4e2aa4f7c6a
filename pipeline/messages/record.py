"""JSON-ready dataclasses: the mixin of every view the CLI and the API print."""

from __future__ import annotations

import dataclasses
from typing import Any


class Record:
    """Mixin of the views' dataclasses: :meth:`as_dict` gives JSON-ready data."""

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain data (tuples become lists)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload,no-any-return]
