"""Read-only views of the running system.

* :mod:`~pipeline.observe.inspection`: status, running and parked jobs, locks, one job.
* :mod:`~pipeline.observe.metrics`: Prometheus metrics.
* :mod:`~pipeline.observe.timewindow`: the ``since`` of a view, as a person writes it.
"""
