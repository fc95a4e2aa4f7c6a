"""Issue 27's speed table, built from the ``cost`` scenario (``bench/scenarios/cost.py``).

One row per goal of the issue. Each row gives this run's value, the pipeline
against Celery as it ships and against the hand-written lock peer where that
comparison applies (the ratio of the medians and the paired ratio of every
round), the goal, whether it is met, and whether the figure may be quoted: only
from a full run whose paired ratios (of the row's goal) spread less than 5 %.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SCENARIO = "cost"
Reading = dict[str, Any]
#: The hand-off is flat when its p50 with the most jobs parked is at most this
#: many times its p50 with 10 parked.
FLAT_LIMIT = 1.5


@dataclass(frozen=True)
class Row:
    """One row: the metric, the issue's goal, and how this run's result is read."""

    metric: str
    goal: str
    phase: str
    read: Callable[[Mapping[str, Any]], Reading]


def pairs_text(node: Mapping[str, Any] | None) -> str:
    """``0.91x (0.90, 0.93, 0.91)``: the ratio and its paired ratios, or ``-``."""
    if not node or node.get("ratio") is None:
        return "-"
    pairs = ", ".join("-" if p is None else f"{p:.2f}" for p in node.get("paired_ratios", []))
    return f"{node['ratio']:.2f}x ({pairs})"


def _note(node: Mapping[str, Any]) -> str:
    spread = node.get("spread")
    return str(node.get("flag") or ("" if spread is None
                                    else f"paired spread {spread * 100:.1f} %"))


def _drain(pool: str, goal_of: str, limit: float) -> Callable[[Mapping[str, Any]], Reading]:
    def read(result: Mapping[str, Any]) -> Reading:
        node = result["drain"][pool]
        judged = node[goal_of]
        rates = node["vs_celery"]
        return {"now": f"pipeline {rates['pipeline']['median']:.0f} jobs/s, Celery "
                       f"{rates['celery']['median']:.0f}, peer "
                       f"{node['vs_peer']['peer']['median']:.0f}",
                "vs_celery": pairs_text(node["vs_celery"]), "vs_peer": pairs_text(node["vs_peer"]),
                "met": judged["ratio"] is not None and judged["ratio"] >= limit,
                "quotable": bool(judged.get("quotable")), "note": _note(judged)}

    return read


def _transport(pool: str) -> Callable[[Mapping[str, Any]], Reading]:
    def read(result: Mapping[str, Any]) -> Reading:
        node = result["drain"][pool]["transport"]
        return {"now": f"{node['guarded']['median']:.0f} vs {node['celery']['median']:.0f} "
                       "jobs/s",
                "vs_celery": pairs_text(node), "vs_peer": "n/a (no locks)",
                "met": node["ratio"] is not None and node["ratio"] >= 1.0,
                "quotable": bool(node.get("quotable")), "note": _note(node)}

    return read


def _parking(result: Mapping[str, Any]) -> Reading:
    node = result["parking"]
    return {"now": f"parks {node['park']['median']:.0f} jobs/s, runs {node['run']['median']:.0f}"
                   f" jobs/s: {pairs_text(node)}",
            "vs_celery": "n/a (cannot park)", "vs_peer": "n/a (waits in its process)",
            "met": node["ratio"] is not None and node["ratio"] >= 0.8,
            "quotable": bool(node.get("quotable")), "note": _note(node)}


def _one_model(result: Mapping[str, Any]) -> Reading:
    node = result["one_model"]
    mine = node["pipeline"]["wall_ratio"]
    dramatiq = node.get("dramatiq", {})
    rivals = [node[name]["wall_ratio"] for name in ("plain_retry", "dramatiq")
              if "wall_ratio" in node.get(name, {})]
    notes = [f"serial {node['pipeline']['samples']}"]
    if "skipped" in dramatiq:
        notes.append(str(dramatiq["skipped"]))
    else:
        notes.append(f"Dramatiq {dramatiq.get('wall_ratio')}x serial, pipeline / Dramatiq "
                     f"{pairs_text(node.get('vs_dramatiq'))}")
    judged = [node.get(f"vs_{name}", {}) for name in ("plain_retry", "dramatiq")
              if f"vs_{name}" in node]
    spreads = [_note(j) for j in judged if _note(j)]
    return {"now": f"{mine:.2f}x serial (plain retry {node['plain_retry']['wall_ratio']:.2f}x, "
                   f"peer {node['peer']['wall_ratio']:.2f}x)",
            "vs_celery": pairs_text(node.get("vs_plain_retry")),
            "vs_peer": pairs_text(node.get("vs_peer")),
            "met": mine <= 1.5 and all(mine < other for other in rivals),
            "quotable": bool(judged) and all(j.get("quotable") for j in judged),
            "note": "; ".join(notes + spreads)}


def _handoff(result: Mapping[str, Any]) -> Reading:
    node = result["handoff"]
    sizes = sorted((int(name.split("_", 1)[1]), name) for name in node
                   if name.startswith("parked_"))
    cells = [f"{size:,}: {node[name].get('p50')} / {node[name].get('p99')} ms"
             for size, name in sizes]
    under = all(node[name].get("p50", 1e9) < 2.0 and node[name].get("p99", 1e9) < 5.0
                for _size, name in sizes)
    flat = node["flat"]
    peer_gap = result.get("one_model", {}).get("peer", {}).get("gap_ms", {})
    return {"now": "; ".join(cells),
            "vs_celery": "n/a (nothing parks)",
            "vs_peer": f"peer's gap on one model {peer_gap.get('p50')} / {peer_gap.get('p99')} ms"
            if peer_gap else "-",
            "met": under and (flat.get("ratio_p50") or 1e9) <= FLAT_LIMIT,
            "quotable": bool(flat.get("quotable")),
            "note": f"p50 with {flat['largest'].split('_', 1)[1]} parked / with 10: "
                    f"{pairs_text({'ratio': flat.get('ratio_p50'), **flat})}; {_note(flat)}"
                    .rstrip("; ")}


ROWS = (
    Row("drain with three locks vs Celery as it ships, prefork -c 2", ">= 0.85x",
        "drain", _drain("prefork", "vs_celery", 0.85)),
    Row("same, solo", ">= 0.85x", "drain", _drain("solo", "vs_celery", 0.85)),
    Row("drain with three locks vs the hand-written peer, prefork -c 2", ">= 1.2x",
        "drain", _drain("prefork", "vs_peer", 1.2)),
    Row("same, solo", ">= 1.2x", "drain", _drain("solo", "vs_peer", 1.2)),
    Row("plain task on the pipeline's transport vs kombu's, prefork -c 2", ">= 1.0x",
        "drain", _transport("prefork")),
    Row("same, solo", ">= 1.0x", "drain", _transport("solo")),
    Row("parking rate behind one holder (prefork -c 2, one process free)",
        ">= 0.8x the no-op drain rate of the same processes", "parking", _parking),
    Row("1,000 x 5 ms on one model, prefork -c 2, wall / serial",
        "<= 1.5x serial, ahead of plain retry and Dramatiq", "one_model", _one_model),
    Row("hand-off p50 / p99 (release to the next parked job's start)",
        "< 2 ms / < 5 ms, flat to 100,000 parked", "handoff", _handoff),
)


def table(scenarios: Mapping[str, Any], *, quick: bool) -> list[dict[str, Any]]:
    """The rows, if the ``cost`` scenario ran (its error in place of values if it failed)."""
    if SCENARIO not in scenarios:
        return []
    result = scenarios[SCENARIO]
    rows: list[dict[str, Any]] = []
    for row in ROWS:
        out: dict[str, Any] = {"metric": row.metric, "goal": row.goal}
        error = result.get("error") or result.get(row.phase, {}).get("error")
        if error:
            out.update(now="error", vs_celery="-", vs_peer="-", met=None, quotable=False,
                       note=f"{row.phase}: {error}")
        else:
            try:
                out.update(row.read(result))
            except (KeyError, TypeError, IndexError) as exc:
                out.update(now="not measured", vs_celery="-", vs_peer="-", met=None,
                           quotable=False, note=f"{type(exc).__name__}: {exc}")
        if quick:
            out.update(quotable=False, note=f"--quick: smoke test only; {out['note']}".rstrip())
        rows.append(out)
    return rows


def render(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| metric | goal | this run | vs Celery as it ships (paired) | vs lock peer (paired) "
             "| met | quotable | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        met = {True: "**met**", False: "missed", None: "-"}[row["met"]]
        quotable = "yes" if row["quotable"] else "**no**"
        lines.append(f"| {row['metric']} | {row['goal']} | {row['now']} | {row['vs_celery']} | "
                     f"{row['vs_peer']} | {met} | {quotable} | {row['note']} |")
    return "\n".join(lines)
