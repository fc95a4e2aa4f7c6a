"""Summaries of benchmark samples: medians, percentiles and pipeline/plain ratios."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

BASE = "plain"
SUBJECT = "pipeline"
#: A comparison whose paired ratios spread this much or more is not quoted (issue 15).
SPREAD_LIMIT = 0.05


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
    out.update(spread_check(pairs))
    return out


def spread(pairs: Sequence[float | None]) -> float | None:
    """(max - min) / median of the paired ratios; None with fewer than two."""
    values = [p for p in pairs if p is not None]
    if len(values) < 2:
        return None
    middle = statistics.median(values)
    return rounded((max(values) - min(values)) / middle, 4) if middle else None


def spread_check(pairs: Sequence[float | None]) -> dict[str, Any]:
    """The spread of *pairs* and whether a ratio built on them may be quoted.

    ``quotable`` is true only when there are at least two pairs and they spread
    less than :data:`SPREAD_LIMIT`; ``flag`` says why not otherwise.
    """
    value = spread(pairs)
    out: dict[str, Any] = {"spread": value, "quotable": False}
    if value is None:
        out["flag"] = "fewer than two rounds: no spread, do not quote"
    elif value >= SPREAD_LIMIT:
        out["flag"] = (f"paired ratios spread {value * 100:.1f} % >= "
                       f"{SPREAD_LIMIT * 100:.0f} %: do not quote")
    else:
        out["quotable"] = True
    return out


def paired_ratios(subject: Sequence[float], base: Sequence[float]) -> dict[str, Any]:
    """Ratios of same-round values (subject / base) with their :func:`spread_check`."""
    pairs = [ratio(s, b) for s, b in zip(subject, base, strict=False)]
    return {"paired_ratios": pairs, **spread_check(pairs)}
