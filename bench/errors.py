"""The benchmarks' one error type."""

from __future__ import annotations


class BenchError(RuntimeError):
    """A benchmark could not measure what it set out to (worker died, job failed)."""
