"""billiard's traceback copies read a code object's positions once, and record the same."""

from __future__ import annotations

import sys

import pytest
from billiard.einfo import ExceptionInfo

from pipeline.runtime import tracebacks

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11),
                                reason="code positions exist from Python 3.11")


def _raise() -> ExceptionInfo:
    try:
        raise ValueError("x")
    except ValueError:
        return ExceptionInfo()


def test_a_traceback_copy_records_the_same_positions_read_once_per_code() -> None:
    before = list(_raise().tb.tb_frame.f_code.co_positions())
    tracebacks.install()
    assert tracebacks.install() is False, "installed twice"
    tracebacks._positions.cache_clear()
    after = _raise()
    assert list(after.tb.tb_frame.f_code.co_positions()) == before
    assert after.tb.tb_frame.f_code.co_name == "_raise"
    _raise()
    assert tracebacks._positions.cache_info().hits >= 1
    assert "ValueError: x" in after.traceback
