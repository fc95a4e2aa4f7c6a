"""Processes: what each one holds, and the ones the ``pipeline`` command starts.

* :mod:`~pipeline.runtime.services`: the per-process handle of one app (settings,
  keys, Redis client, lock engine, heartbeat), made anew after a ``fork``.
* :mod:`~pipeline.runtime.running`: the jobs this process runs under a hold.
* :mod:`~pipeline.runtime.checks`: checks of the Redis and database it is given.
* :mod:`~pipeline.runtime.embedded`, :mod:`~pipeline.runtime.launch`: the embedded
  Redis server and the supervised worker, beat and Flower processes.
"""
