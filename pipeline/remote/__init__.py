"""Jobs that agents run over HTTP: pools, claims, leases and outcomes.

An agent is a process that may only speak HTTPS to the control plane (a test
rig, a GPU box in another network, a runner in another language). It holds a
token ``agent:POOL:TOKEN`` and takes the jobs of its pool through the REST API
(:mod:`pipeline.api.agents`); ``pipeline agent`` is the reference agent
(:mod:`pipeline.remote.runner`). A job's whole loop::

    caller: task.apply_async(..., agent_pool="prod")      (pipeline.job.pools)
      │                           the pool's broker queue ``pool.prod``: priority
      │                           lists and a wake list, as any queue; no Celery
      │                           worker consumes it
      ▼
    agent: POST /api/agents/claim ──▶ claims.claim ──▶ locks/lua/claim.lua
      │                           the most urgent message, FIFO within a level;
      │                           take.lua, a worker's rule: every lock at once
      ├── granted ──────────────▶ a lease (the hold's deadline), 200 with the job
      └── blocked: parked         in the lines of what blocks it; the release that
                                  hands it its locks pushes it back to the front
                                  of the pool, where the next claim takes it
    agent: /start, /heartbeat     reports.start, reports.heartbeat (lease.lua:
                                  the lease and the locks renewed together)
    agent: /complete, /fail       reports.end (the lease ends: one report only),
                                  then outcome.complete / outcome.fail: the
                                  canvas goes on, the result is stored, retries
                                  and dead letters as on a worker, the locks go
    nobody: the lease runs out    the beat sweep and every claim give the job
                                  back to its pool, its locks handed on, the
                                  reason in its history; a late report gets 409

The lock engine's side (Redis, the scripts) is :mod:`pipeline.locks.leases`.
"""
