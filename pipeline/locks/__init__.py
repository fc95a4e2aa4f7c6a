"""The lock engine: a job's claims taken all at once, parked jobs, hand-offs, leases.

* :mod:`~pipeline.locks.resources`: what a job needs, as claims on resources.
* :mod:`~pipeline.locks.ticket`: the ticket a job is locked with and what each call returns.
* :mod:`~pipeline.locks.engine`: the engine on Redis, one Lua call per operation
  (``lua/``: ``acquire`` parks a job that cannot run, ``release`` hands freed
  resources to parked jobs in the same call, see ``wake`` in ``lib.lua``).
* :mod:`~pipeline.messages.envelope`: the message a parked job is stored with.
* :mod:`~pipeline.locks.heartbeat`: the thread that renews the leases of a process.
"""
