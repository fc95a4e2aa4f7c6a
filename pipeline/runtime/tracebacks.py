"""Cheaper tracebacks for Celery's ``Ignore``: the code positions of a function read once.

Every job that is parked ends in ``before_start`` with ``Ignore`` (the only way
to end a job without running it or its callbacks), and Celery then builds
billiard's picklable ``ExceptionInfo`` twice. On Python 3.11 and newer,
billiard copies ``code.co_positions()`` of every frame into a list each time,
and the first frame is Celery's tracer, a function of several thousand
instructions: measured here, that copy was about 45 % of the worker's CPU time
per parked job. The positions of a code object never change, so
:func:`install` makes billiard read them once per code object. What billiard
records is unchanged (the same positions, in a tuple instead of a list).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from types import CodeType
from typing import Any


@lru_cache(maxsize=1024)
def _positions(code: CodeType) -> tuple[Any, ...]:
    return tuple(code.co_positions())


class _KnownPositions:
    """A code object whose ``co_positions()`` comes from :func:`_positions`."""

    __slots__ = ("_code",)

    def __init__(self, code: CodeType) -> None:
        self._code = code

    def __getattr__(self, name: str) -> Any:
        return getattr(self._code, name)

    def co_positions(self) -> Any:
        """The code's positions, read once per code object."""
        return iter(_positions(self._code))


def install() -> bool:
    """Make billiard's traceback copies reuse each code object's positions.

    Returns:
        Whether anything was changed (only on Python 3.11+, once).
    """
    if sys.version_info < (3, 11):
        return False
    from billiard import einfo

    original = einfo._Code.__init__
    if getattr(original, "pipeline_positions_cached", False):
        return False

    def __init__(self: Any, code: Any) -> None:
        original(self, _KnownPositions(code) if isinstance(code, CodeType) else code)

    __init__.pipeline_positions_cached = True  # type: ignore[attr-defined]
    einfo._Code.__init__ = __init__
    return True
