"""Agents over HTTP: claims per second, and publish-to-start against a Celery worker's.

The REST API runs as deployed, a ``pipeline api`` process of its own on
loopback; the agents are threads of the benchmark's process speaking HTTP to it
(one keep-alive client each), as ``pipeline agent`` does, minus running a
command.

* **Claims.** N no-op jobs are published to an agent pool first; 4 agents then
  claim, start and complete them as fast as they can (three calls per job, the
  claim taking the job's locks in one Lua call). Reported: claims per second,
  and the p50 / p99 of one claim call.
* **Latency.** One agent long-polls the pool (``wait``: woken by the publish's
  wake token); jobs are published one at a time with a gap of about 20 ms, as
  in the ``latency`` scenario. For each job: publish to claim (the job in the
  agent's hands, its locks taken), claim to start (the agent's ``/start``
  answered: STARTED recorded) and publish to start. Against it, in alternating
  rounds, the same jobs published to the pipeline's prefork worker (``-c 2``):
  publish to the start of the job's body. The ratio is agent / worker, p50.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.harness import IDLE_GAP, REPO, Context, publish_to_start, wait_idle
from bench.scenarios import Scenario
from bench.stats import paired_ratios, percentile, ratio, rounded
from bench.targets import Target, pipeline

POOL = "bench"
AGENT_TOKEN = "bench-agent-token-0123456789"
AGENTS = 4


class Served:
    """``pipeline api`` as its own process on a free loopback port (with the agent's token)."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.log = workdir / "agents-api.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Served:
        env = {**os.environ, "PYTHONPATH": str(REPO),
               "PIPELINE_API_TOKENS": f"agent:{POOL}:{AGENT_TOKEN}"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "-A", "tasks.app", "api", "--port",
                 str(self.port), "--log-level", "warning"], cwd=REPO, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1):
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"pipeline api did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def _client(served: Served) -> Any:
    import httpx

    return httpx.Client(base_url=f"http://127.0.0.1:{served.port}", timeout=60,
                        headers={"Authorization": f"Bearer {AGENT_TOKEN}"})


def _call(http: Any, path: str, body: dict[str, Any], expect: int = 200) -> Any:
    response = http.post(path, json=body)
    if response.status_code != expect:
        raise BenchError(f"POST {path}: {response.status_code} {response.text[:300]}")
    return response.json() if expect == 200 else None


def claims(served: Served, target: Target, jobs: int) -> dict[str, Any]:
    """AGENTS agents claim, start and complete *jobs* pre-published jobs."""
    task = target.app.tasks["bench.pipeline.noop"]
    for _ in range(jobs):
        task.apply_async(agent_pool=POOL)
    each: list[float] = []
    done: list[str] = []
    guard = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(AGENTS + 1)

    def agent(number: int) -> None:
        try:
            with _client(served) as http:
                barrier.wait()
                while True:
                    began = time.perf_counter()
                    response = http.post("/api/agents/claim",
                                         json={"agent_id": f"a{number}", "pool": POOL})
                    took = time.perf_counter() - began
                    if response.status_code == 204:
                        return
                    job = response.json()
                    lease = {"lease": job["lease"]}
                    _call(http, f"/api/agents/jobs/{job['id']}/start", lease)
                    _call(http, f"/api/agents/jobs/{job['id']}/complete", {**lease,
                                                                          "result": None})
                    with guard:
                        each.append(took)
                        done.append(job["id"])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(n,), daemon=True) for n in range(AGENTS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(600)
    elapsed = time.perf_counter() - started
    if errors:
        raise BenchError(f"an agent failed: {errors[0]!r}")
    if len(done) != jobs or len(set(done)) != jobs:
        raise BenchError(f"{len(set(done))} distinct jobs of {jobs} were claimed "
                         f"({len(done)} claims)")
    return {"agents": AGENTS, "jobs": jobs, "claims_per_s": rounded(jobs / elapsed, 1),
            "claim_p50_ms": rounded(percentile(each, 50) * 1000),
            "claim_p99_ms": rounded(percentile(each, 99) * 1000)}


def agent_latency(served: Served, target: Target, jobs: int, jitter: random.Random
                  ) -> dict[str, list[float]]:
    """Publish to claim, claim to start, publish to start (ms) of *jobs* jobs, one at a time."""
    task = target.app.tasks["bench.pipeline.noop"]
    got: dict[str, tuple[float, float]] = {}
    arrived = threading.Condition()
    stop = threading.Event()

    def agent() -> None:
        with _client(served) as http:
            while not stop.is_set():
                response = http.post("/api/agents/claim",
                                     json={"agent_id": "lat", "pool": POOL, "wait": 2})
                if response.status_code == 204:
                    continue
                claimed = time.time()
                job = response.json()
                lease = {"lease": job["lease"]}
                _call(http, f"/api/agents/jobs/{job['id']}/start", lease)
                started = time.time()
                with arrived:
                    got[job["id"]] = (claimed, started)
                    arrived.notify_all()
                _call(http, f"/api/agents/jobs/{job['id']}/complete", {**lease, "result": None})

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    time.sleep(0.5)  # the agent is waiting on the pool's wake list
    out: dict[str, list[float]] = {"publish_to_claim": [], "claim_to_start": [],
                                   "publish_to_start": []}
    try:
        for _ in range(jobs):
            published = time.time()
            job_id = str(task.apply_async(agent_pool=POOL).id)
            with arrived:
                if not arrived.wait_for(lambda job=job_id: job in got, timeout=30):
                    raise BenchError(f"job {job_id} was not claimed within 30 s")
                claimed, started = got.pop(job_id)
            out["publish_to_claim"].append((claimed - published) * 1000)
            out["claim_to_start"].append((started - claimed) * 1000)
            out["publish_to_start"].append((started - published) * 1000)
            time.sleep(IDLE_GAP * jitter.uniform(0.5, 1.5))
    finally:
        stop.set()
        thread.join(10)
    return out


def _percentiles(values: list[float]) -> dict[str, float]:
    return {"p50": rounded(percentile(values, 50)), "p99": rounded(percentile(values, 99)),
            "mean": rounded(statistics.fmean(values))}


def run(ctx: Context) -> dict[str, Any]:
    """Claims per second, then agent vs worker latency in alternating rounds."""
    target = pipeline()
    worker = ctx.worker(target)
    ctx.start_workers([worker])
    worker.resume()
    jobs = ctx.size(200, 40)
    jitter = random.Random(7)
    with Served(ctx.workdir) as served:
        result: dict[str, Any] = {"claims": claims(served, target, ctx.size(2_000, 300))}
        wait_idle(worker)

        def sample(name: str, _round: int) -> dict[str, list[float]]:
            if name == "agent":
                found = agent_latency(served, target, jobs, jitter)
            else:
                found = {"publish_to_start": publish_to_start(ctx.client, target, worker, jobs,
                                                              jitter)}
            wait_idle(worker)
            return found

        samples = ctx.alternate(["agent", "worker"], sample)
    latency: dict[str, Any] = {"jobs_per_round": jobs, "rounds": ctx.rounds, "unit": "ms",
                               "gap_ms": IDLE_GAP * 1000, "worker_pool": "prefork"}
    for name, rounds in samples.items():
        latency[name] = {kind: _percentiles([v for r in rounds for v in r[kind]])
                         for kind in rounds[0]}
        latency[name]["round_p50s"] = [rounded(percentile(r["publish_to_start"], 50))
                                       for r in rounds]
    latency["ratio_p50"] = ratio(latency["agent"]["publish_to_start"]["p50"],
                                 latency["worker"]["publish_to_start"]["p50"])
    latency.update(paired_ratios(latency["agent"]["round_p50s"],
                                 latency["worker"]["round_p50s"]))
    result["latency"] = latency
    return result


SCENARIO = Scenario("agents", "agents over HTTP: claims per second; publish-to-claim, "
                    "claim-to-start and publish-to-start against a worker's start", run,
                    order=96)
