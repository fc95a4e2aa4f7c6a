"""What crosses a process boundary, each one typed class with one encode and one decode.

* :mod:`~pipeline.messages.header`: the job header, from the publisher to the worker.
* :mod:`~pipeline.messages.events`: the job event, from every process (and the lock
  scripts) to the store, Flower and the metrics; :mod:`~pipeline.messages.emitter`
  buffers the events of the publish path.
* :mod:`~pipeline.messages.record`: the JSON-ready views the CLI and the API print.
"""
