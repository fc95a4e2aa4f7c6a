"""Summaries of benchmark samples: medians, percentiles and pipeline/plain ratios."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

BASE = "plain"
SUBJECT = "pipeline"


def percentile(values: Sequence[float], q: float) -> float:
    """The *q*-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rounded(value: float, digits: int = 3) -> float:
    """*value* rounded for the JSON report."""
    return round(value, digits)


def summary(samples: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median, min, max and every sample (in the order measured)."""
    return {
        "median": rounded(statistics.median(samples), digits),
        "min": rounded(min(samples), digits),
        "max": rounded(max(samples), digits),
        "samples": [rounded(s, digits) for s in samples],
    }


def ratio(subject: float, base: float) -> float | None:
    """subject / base, or None when the base is zero."""
    return rounded(subject / base) if base else None


def compare(samples: Mapping[str, Sequence[float]], unit: str, *, base: str = BASE,
            subject: str = SUBJECT, digits: int = 3) -> dict[str, Any]:
    """Both apps' summaries and the ratio of their medians (subject / base).

    ``paired_ratios`` divides the samples of the same round, which cancels the
    slow drift of a noisy machine better than the ratio of medians.
    """
    out: dict[str, Any] = {"unit": unit}
    for name in (base, subject):
        out[name] = summary(samples[name], digits)
    out["ratio"] = ratio(out[subject]["median"], out[base]["median"])
    pairs = [ratio(s, b) for s, b in zip(samples[subject], samples[base], strict=False)]
    out["paired_ratios"] = pairs
    return out
