"""Every ratio of a run, with the spread of its paired ratios: which ones may be quoted.

A comparison is any object of the report that holds ``paired_ratios`` (same-round
ratios, see :func:`bench.stats.compare`). Its headline ratio is quotable only
from a full run (not ``--quick``) whose paired ratios spread less than
:data:`bench.stats.SPREAD_LIMIT` (5 %): issue 15 saw quick sizes spread from
0.63 to 1.01.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from bench.stats import SPREAD_LIMIT

QUICK_FLAG = "--quick run: smoke test only, do not quote"


def _comparisons(node: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(node, Mapping):
        if "paired_ratios" in node:
            yield ".".join(path), node
        for key, value in node.items():
            yield from _comparisons(value, (*path, str(key)))


def ratio_rows(scenarios: Mapping[str, Any], *, quick: bool) -> list[dict[str, Any]]:
    """One row per comparison of *scenarios* (the report's ``scenarios``)."""
    rows: list[dict[str, Any]] = []
    for path, node in _comparisons(scenarios, ()):
        headline = next((node[key] for key in ("ratio", "ratio_p50", "pipeline_vs_plain")
                         if node.get(key) is not None), None)
        quotable = bool(node.get("quotable")) and not quick
        flag = QUICK_FLAG if quick else node.get("flag")
        rows.append({"comparison": path, "ratio": headline,
                     "paired_ratios": node["paired_ratios"], "spread": node.get("spread"),
                     "quotable": quotable, "flag": flag})
    return rows


def _spread_text(spread: float | None) -> str:
    return "-" if spread is None else f"{spread * 100:.1f} %"


def render(rows: list[dict[str, Any]]) -> str:
    """The rows as a text table (one line each; flagged rows say why not to quote them)."""
    lines = [f"ratios of this run (quote only full runs whose paired ratios spread < "
             f"{SPREAD_LIMIT * 100:.0f} %)",
             f"{'comparison':58} {'ratio':>7} {'spread':>8}  paired / flag"]
    for row in rows:
        paired = " ".join("-" if p is None else f"{p:.3f}" for p in row["paired_ratios"])
        verdict = "quotable" if row["quotable"] else f"NOT QUOTABLE: {row['flag']}"
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
        lines.append(f"{row['comparison']:58} {ratio:>7} {_spread_text(row['spread']):>8}  "
                     f"{paired}  {verdict}")
    return "\n".join(lines)
