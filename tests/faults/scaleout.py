"""Scale-out: worker hosts on one machine (network namespaces), against one Redis.

* tests 1 and 2 with one worker per host;
* one host's link cut while it runs jobs: its leases run out, its messages go
  silent and its jobs are rescued by the other hosts; nothing is lost;
* throughput with 1, 2 and 4 hosts, and what bounds it (Redis's CPU or the
  machine's).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from tests.faults import locking
from tests.faults.crashes import RESTORE_EVERY
from tests.faults.netns import Hosts
from tests.faults.probes import work
from tests.faults.rig import Figure, Rig, rig, wait_until


def _mode(hosts: Hosts) -> str:
    return "network namespaces" if hosts.namespaced else "processes with distinct host names"


def invariants_across_hosts(directory: Path, hosts: Hosts, jobs_one: int = 500,
                            jobs_mixed: int = 2000) -> list[Figure]:
    """Tests 1 and 2 with one single-process worker on each host."""
    figures = []
    count = len(hosts.hosts)
    with rig(directory / "one", hosts=hosts) as running:
        one = locking.exclusive_model(running, jobs=jobs_one, workers=count, concurrency=1)
    with rig(directory / "mixed", hosts=hosts) as running:
        mixed = locking.mixed_capacity(running, jobs=jobs_mixed, workers=count, concurrency=1)
    for figure in (one, mixed):
        figures.append(replace(figure, name=f"{figure.name}, {count} hosts",
                               broken=f"{figure.broken}; one worker on each of {count} hosts "
                                      f"({_mode(hosts)})", notes={**figure.notes,
                                                                  "hosts": count}))
    return figures


def cut_link(rig_: Rig, hosts: Hosts, lease: float = 3.0, visibility: int = 6,
             seconds: float = 30.0) -> Figure:
    """Cut one host off while it runs jobs; the others rescue them; nothing is lost."""
    rig_.fleet.settings.update(lock_lease=lease, visibility_timeout=visibility)
    # Its jobs outlast the rescue, so the cut-off copies never finish first.
    seconds = max(seconds, visibility + RESTORE_EVERY + lease + 20.0)
    # The host to cut takes its jobs first; the others start idle, free to rescue them.
    victim = rig_.fleet.add(2, host=hosts.hosts[-1])
    host = hosts.hosts[-1]
    ids = [work.apply_async((seconds, f"c{i}", 0.2), user=f"u{i}").id for i in range(2)]
    pids = set(victim.pids()[1:])
    wait_until(lambda: len([r for r in rig_.ledger.runs() if r.pid in pids]) == 2,
               60.0, "two jobs running on the host to cut")
    workers = [victim, *(rig_.fleet.add(1, host=h) for h in hosts.hosts[:-1])]
    ids += [work.apply_async((0.1, f"d{i}")).id for i in range(len(workers))]
    caught = {r.job_id for r in rig_.ledger.runs() if r.pid in pids and not r.finished}
    hosts.cut(host, victim.pids())
    cut_at = time.time()
    rescued = wait_until(lambda: [r for r in rig_.ledger.runs() if r.job_id in caught
                                  and r.start > cut_at and r.host != host.name],
                         visibility + RESTORE_EVERY + lease + 60.0, "the cut host's jobs rescued")
    rescue_s = min(r.start for r in rescued) - cut_at
    rig_.fleet.kill(victim)  # fence the cut-off host before it could finish its copy
    hosts.mend(host)
    rig_.wait_finished(ids, timeout=seconds * 3 + 60.0)
    figure = Figure(13, "host link cut", f"the network link of one of {len(workers)} hosts cut "
                    f"while it runs jobs ({_mode(hosts)}); visibility timeout {visibility} s, "
                    f"lease {lease:g} s", times=1, jobs=len(ids),
                    locks_leaked=rig_.settle_locks(lease + 3.0), recovery_s=round(rescue_s, 2),
                    notes={"jobs_on_cut_host": len(caught), "hosts": len(workers),
                           "mode": _mode(hosts)})
    return figure.count(rig_.verdict(ids))


def _drain(rig_: Rig, jobs: int) -> dict[str, Any]:
    """Queue *jobs* trivial jobs, let the running workers drain them; rate and CPU use."""
    redis_proc = psutil.Process(rig_.server.process.pid) if rig_.server.process else None
    if redis_proc is not None:
        redis_proc.cpu_percent(None)
    psutil.cpu_percent(None)
    began = time.time()
    ids = [work.apply_async((0.0, f"t{i}"), ignore_result=True).id for i in range(jobs)]
    rig_.wait_finished(ids, timeout=60.0 + jobs * 0.1)
    took = time.time() - began
    machine = psutil.cpu_percent(None)
    redis_cpu = redis_proc.cpu_percent(None) if redis_proc is not None else 0.0
    return {"jobs_per_s": round(jobs / took, 1), "machine_cpu_percent": round(machine, 1),
            "redis_cpu_percent_of_one_core": round(redis_cpu, 1)}


def throughput(directory: Path, hosts: Hosts, jobs: int = 2000,
               counts: tuple[int, ...] = (1, 2, 4)) -> Figure:
    """Drain rate with 1, 2 and 4 hosts (one single-process worker each), and its bound."""
    rates: dict[str, Any] = {}
    for count in counts:
        with rig(directory / f"hosts{count}", hosts=hosts) as running:
            for _ in range(count):
                running.fleet.add(1)
            rates[str(count)] = _drain(running, jobs)
    top = rates[str(max(counts))]
    if top["redis_cpu_percent_of_one_core"] >= 85:
        bound = "Redis (one core busy)"
    elif top["machine_cpu_percent"] >= 85:
        bound = f"CPU ({psutil.cpu_count()} cores busy: workers, Redis and the publisher)"
    else:
        bound = "neither Redis nor the CPU was saturated (latency-bound)"
    return Figure(14, "throughput by hosts", f"{jobs} trivial jobs drained by 1, 2 and 4 hosts "
                  f"({_mode(hosts)})", times=len(counts), jobs=jobs * len(counts),
                  notes={"by_hosts": rates, "bound": bound,
                         "cpu_count": psutil.cpu_count()})
