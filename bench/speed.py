"""Issue 15's speed table: the ``speed`` group of scenarios and the table built from them.

``python -m bench --scenario speed`` runs exactly the scenarios the table needs
(:data:`SCENARIOS`) and prints one row per row of the issue: the metric, the
figure the issue quotes (2026-11-26, commit ``68044f4``), the value of this run,
the goal, and whether it is met. A row's value is quotable only from a full run
whose paired ratios spread less than 5 % (see :mod:`bench.summary`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

GROUP = "speed"
#: The scenarios of the ``speed`` group, in run order.
SCENARIOS = ("publish", "latency", "locks_throughput", "handoff", "park_rate", "one_model",
             "fifo", "workflow_overhead")

Reading = dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One row of the table: where its value comes from and how it is judged."""

    metric: str
    was: str
    goal: str
    scenario: str
    read: Callable[[Mapping[str, Any]], Reading]


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _quotable(node: Mapping[str, Any]) -> dict[str, Any]:
    spread = node.get("spread")
    return {"quotable": bool(node.get("quotable")),
            "note": node.get("flag") or ("" if spread is None
                                         else f"paired spread {spread * 100:.1f} %")}


def _drain(pool: str, store: str, baseline: str, limit: float
           ) -> Callable[[Mapping[str, Any]], Reading]:
    def read(result: Mapping[str, Any]) -> Reading:
        node = result[pool][store][baseline]
        return {"now": _x(node["ratio"]), "met": node["ratio"] >= limit, **_quotable(node)}

    return read


def _publish(result: Mapping[str, Any]) -> Reading:
    node = result["configured"]
    shipped = result["as_ships"]["ratio"]
    out = {"now": _x(node["ratio"]), "met": node["ratio"] >= 0.90, **_quotable(node)}
    out["note"] = f"{out['note']}; as it ships {_x(shipped)}".lstrip("; ")
    return out


def _latency(result: Mapping[str, Any]) -> Reading:
    p50, p99 = result["ratio_p50"], result["ratio_p99"]
    return {"now": f"{_x(p50)} / {_x(p99)}", "met": p50 <= 1.10 and p99 <= 1.30,
            **_quotable(result)}


def _park_rate(result: Mapping[str, Any]) -> Reading:
    node = result["as_ships"]
    return {"now": f"{node['park']['median']:.0f} jobs/s, runs {node['run']['median']:.0f} "
                   f"jobs/s: {_x(node['ratio'])}",
            "met": node["ratio"] >= 0.8, **_quotable(node)}


def _handoff(result: Mapping[str, Any]) -> Reading:
    parking, quiet = (result[m]["pipeline_handoff"] for m in ("parking", "quiet"))
    busy = result["quiet"]["plain_busy_gap"]
    met = all(h.get("p50", 1e9) < 2.0 and h.get("p99", 1e9) < 5.0 for h in (parking, quiet))
    checks = {m: _quotable(result[m]) for m in ("parking", "quiet")}
    notes = "; ".join(f"{m}: {c['note']}" for m, c in checks.items() if c["note"])
    return {"now": f"{parking.get('p50')} / {parking.get('p99')} ms "
                   f"({quiet.get('p50')} / {quiet.get('p99')} ms when nothing else parks)",
            "met": met, "quotable": all(c["quotable"] for c in checks.values()),
            "note": f"busy plain gap {busy.get('p50')} / {busy.get('p99')} ms; {notes}"
                    .rstrip("; ")}


def _one_model(result: Mapping[str, Any]) -> Reading:
    mine, peer = result["pipeline"]["wall_ratio"], result["plain"]["wall_ratio"]
    return {"now": f"{_x(mine)} (plain lock + retry {_x(peer)})",
            "met": mine <= 1.10 and mine <= peer, **_quotable(result)}


def _workflow(result: Mapping[str, Any]) -> Reading:
    return {"now": _x(result["ratio"]), "met": result["ratio"] <= 1.05, **_quotable(result)}


def _fifo(result: Mapping[str, Any]) -> Reading:
    node = result["pipeline"]
    counts = node["started_before_an_earlier_job"]
    return {"now": f"up to {node['max']} started before an earlier one ({counts})",
            "met": node["max"] == 0, "quotable": True, "note": "a count, no ratio"}


ROWS = (
    Row("drain, 4 locks, store off, vs Celery as it ships, prefork -c 2", "0.65x", ">= 0.95x",
        "locks_throughput", _drain("prefork", "store_off", "as_ships", 0.95)),
    Row("same, solo", "0.58x", ">= 0.90x", "locks_throughput",
        _drain("solo", "store_off", "as_ships", 0.90)),
    Row("drain, 4 locks, store on, vs Celery with events and results, prefork", "0.78-0.90x",
        ">= 0.97x", "locks_throughput", _drain("prefork", "sqlite", "configured", 0.97)),
    Row("same, solo", "0.76-0.81x", ">= 0.93x", "locks_throughput",
        _drain("solo", "sqlite", "configured", 0.93)),
    Row("publish, .delay()", "0.63-0.73x", ">= 0.90x", "publish", _publish),
    Row("publish-to-start p50 / p99, idle worker", "1.22-1.40x / 1.67-1.73x",
        "<= 1.10x / 1.30x", "latency", _latency),
    Row("parking rate of one pool process", "125-150 jobs/s (runs about 870 jobs/s)",
        ">= 0.8x its run rate", "park_rate", _park_rate),
    Row("hand-off p50 / p99 while new jobs keep parking", "6.3 / 11.3 ms (3.2 / 12.8 ms when "
        "nothing else parks)", "< 2 / < 5 ms in both", "handoff", _handoff),
    Row("1,000 jobs x 5 ms on one model, 2 processes, wall / serial",
        "2.16x (plain lock + retry 2.04x)", "<= 1.10x, never behind a peer", "one_model",
        _one_model),
    Row("3-step workflow, per step", "1.11-1.39x", "<= 1.05x", "workflow_overhead", _workflow),
    Row("FIFO within one priority, 200 jobs on one model, 2 processes",
        "up to 13 started before an earlier one", "0", "fifo", _fifo),
)


def table(scenarios: Mapping[str, Any], *, quick: bool) -> list[dict[str, Any]]:
    """The rows whose scenario ran (its error in place of a value where it failed)."""
    rows: list[dict[str, Any]] = []
    for row in ROWS:
        if row.scenario not in scenarios:
            continue
        result = scenarios[row.scenario]
        out: dict[str, Any] = {"metric": row.metric, "was": row.was, "goal": row.goal,
                               "scenario": row.scenario}
        if "error" in result:
            out.update(now="error", met=None, quotable=False, note=result["error"])
        else:
            try:
                out.update(row.read(result))
            except (KeyError, TypeError) as exc:
                out.update(now="not measured", met=None, quotable=False,
                           note=f"{type(exc).__name__}: {exc}")
        if quick:
            out.update(quotable=False, note=f"--quick: smoke test only; {out['note']}".rstrip())
        rows.append(out)
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| metric | issue 15 (2026-11-26) | this run | goal | met | quotable | note |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        met = {True: "**met**", False: "missed", None: "-"}[row["met"]]
        quotable = "yes" if row["quotable"] else "**no**"
        lines.append(f"| {row['metric']} | {row['was']} | {row['now']} | {row['goal']} | {met} "
                     f"| {quotable} | {row['note']} |")
    return "\n".join(lines)
