"""The REST API: enqueue rate and latency against ``apply_async``, and the cost of a scrape.

* **Enqueue.** One process publishes N no-op pipeline jobs with
  ``apply_async`` (the base), then N through ``POST /api/jobs`` of the API
  served by uvicorn on loopback in the same process (one keep-alive HTTP
  client, one request at a time), then N in batches of 100 through ``POST
  /api/jobs/batch``; jobs/s and the latency of each call (p50, p99). No worker
  runs; each sample checks that every job reached the queue, then purges it.
* **Scrape.** ``GET /metrics`` (timed in process, its Redis reads included)
  with 10 jobs parked and with 100,000 (``--quick``: 10,000), parked behind a
  hold the benchmark keeps; the ratio says whether a scrape grows with the
  number parked.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.errors import BenchError
from bench.harness import Context, purge
from bench.parker import Parker
from bench.scenarios import Scenario
from bench.scenarios.parked_scale import MODEL
from bench.stats import percentile, ratio, rounded
from bench.targets import Target, pipeline
from pipeline.api.app import create_app
from pipeline.api.auth import TokenSet, parse_tokens
from pipeline.observe.metrics import Metrics
from pipeline.priority import Priority

TOKEN = "bench-admin-token-0123456789"
BATCH = 100


class Served:
    """The API on a free loopback port, served by uvicorn in a thread."""

    def __init__(self, target: Target) -> None:
        import socket

        import uvicorn

        tokens = TokenSet(tuple(parse_tokens(f"admin:{TOKEN}", "bench")))
        self.api = create_app(target.app, tokens=tokens,
                              metrics=Metrics(target.app, worker_refresh=0))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.server = uvicorn.Server(uvicorn.Config(self.api, host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise BenchError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _latencies(calls: int, call: Any) -> tuple[float, list[float]]:
    """(elapsed seconds, per-call seconds) of *calls* calls of *call*."""
    each = []
    started = time.perf_counter()
    for _ in range(calls):
        begin = time.perf_counter()
        call()
        each.append(time.perf_counter() - begin)
    return time.perf_counter() - started, each


def _summary(jobs: int, elapsed: float, each: list[float]) -> dict[str, Any]:
    return {"jobs_per_s": rounded(jobs / elapsed, 1),
            "p50_ms": rounded(percentile(each, 50) * 1000),
            "p99_ms": rounded(percentile(each, 99) * 1000)}


def enqueue(ctx: Context, target: Target, jobs: int) -> dict[str, Any]:
    """apply_async, the API one by one, the API in batches: rate and latency of each."""
    import httpx

    task = target.app.tasks["bench.pipeline.noop"]
    body = {"task": "bench.pipeline.noop", "priority": "normal"}
    batch = {"jobs": [body] * BATCH}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    out: dict[str, list[dict[str, Any]]] = {"apply_async": [], "api": [], "api_batch": []}
    with Served(target) as served, httpx.Client(base_url=f"http://127.0.0.1:{served.port}",
                                                headers=headers) as client:
        def post(path: str, payload: dict[str, Any]) -> None:
            response = client.post(path, json=payload)
            if response.status_code != 201:
                raise BenchError(f"POST {path}: {response.status_code} {response.text}")

        runs = {
            "apply_async": (jobs, lambda: task.apply_async(priority=Priority.NORMAL.label)),
            "api": (jobs, lambda: post("/api/jobs", body)),
            "api_batch": (jobs // BATCH, lambda: post("/api/jobs/batch", batch)),
        }
        for round_no in range(ctx.rounds):
            order = list(runs) if round_no % 2 == 0 else list(reversed(runs))
            for name in order:
                calls, call = runs[name]
                elapsed, each = _latencies(calls, call)
                published = purge(target, target.queues)
                expected = calls * (BATCH if name == "api_batch" else 1)
                if published != expected:
                    raise BenchError(f"{name}: {published} of {expected} jobs were queued")
                out[name].append(_summary(expected, elapsed, each))
    best = {name: max(s["jobs_per_s"] for s in samples) for name, samples in out.items()}
    return {"jobs": jobs, "samples": out,
            "api_vs_apply_async": ratio(best["api"], best["apply_async"]),
            "api_batch_vs_apply_async": ratio(best["api_batch"], best["apply_async"])}


def scrape_cost(ctx: Context, target: Target, parked: int, scrapes: int) -> dict[str, Any]:
    """Milliseconds per ``/metrics`` with 10 and with *parked* jobs parked."""
    from fastapi.testclient import TestClient

    headers = {"Authorization": f"Bearer {TOKEN}"}
    parker = Parker(target, MODEL)
    parker.hold()
    api = create_app(target.app, tokens=TokenSet(tuple(parse_tokens(f"read:{TOKEN}", "b"))),
                     metrics=Metrics(target.app, worker_refresh=0))
    client = TestClient(api)
    out = {}
    done = 0
    for size in (10, parked):
        parker.park(size - done)
        done = size
        parker.renew()
        _, each = _latencies(scrapes, lambda: client.get("/metrics", headers=headers))
        out[size] = {"p50_ms": rounded(percentile(each, 50) * 1000),
                     "p99_ms": rounded(percentile(each, 99) * 1000),
                     "bytes": len(client.get("/metrics", headers=headers).content)}
    parker.release()
    return {"parked": out,
            "p50_ratio": ratio(out[parked]["p50_ms"], out[10]["p50_ms"])}


def run(ctx: Context) -> dict[str, Any]:
    """Both measurements on the pipeline app (no worker runs)."""
    target = pipeline()
    result = {"enqueue": enqueue(ctx, target, ctx.size(2_000, 300))}
    ctx.flush()
    result["scrape"] = scrape_cost(ctx, target, ctx.size(100_000, 10_000), ctx.size(50, 10))
    return result


SCENARIO = Scenario("api", "REST API enqueue rate and p99 against apply_async; /metrics "
                    "scrape cost with 100,000 parked jobs", run, order=95)
