"""Admission and load: the load gate, the load score, worker agents and allocation.

* :mod:`~pipeline.admission.load`: readings of the host (psutil), the score
  (CPU 40 %, memory 35 %, queue depth 25 %) and its level.
* :mod:`~pipeline.admission.gate`: when a worker stops and resumes taking jobs.
* :mod:`~pipeline.admission.agents`: the load record each worker publishes,
  :func:`list_agents` and :func:`gate_state`.
* :mod:`~pipeline.admission.allocation`: the least-loaded worker, backpressure
  and how many processes to add or remove.
* :mod:`~pipeline.admission.bootstep`: the worker bootstep (loaded by the worker
  only) and :mod:`~pipeline.admission.autoscale`, the optional autoscaler.
"""

from __future__ import annotations

from pipeline.admission.agents import AgentStatus, gate_state, list_agents
from pipeline.admission.allocation import Allocation, allocate, recommend
from pipeline.admission.gate import ALL_PAUSED, GateState, LoadLimits
from pipeline.admission.load import LoadLevel, LoadReading, level_for, load_score

__all__ = [
    # agents
    "AgentStatus",
    "list_agents",
    "gate_state",
    "GateState",
    "ALL_PAUSED",
    # load
    "LoadLevel",
    "LoadReading",
    "LoadLimits",
    "load_score",
    "level_for",
    # allocation
    "Allocation",
    "allocate",
    "recommend",
]
