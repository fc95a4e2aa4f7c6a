"""What operators do, and what beat does for them.

* :mod:`~pipeline.actions.control`: cancel, reprioritize, where a job stands, flush,
  force-release a resource.
* :mod:`~pipeline.actions.deadletters`: list, requeue and purge dead letters.
* :mod:`~pipeline.actions.importer`: a pending-requests file as jobs.
* :mod:`~pipeline.actions.maintenance`: the beat schedule's sweeps and retention.
"""
