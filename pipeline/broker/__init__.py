"""The worker's side of the broker: kombu's Redis transport and Celery's consumer, guarded.

* :mod:`pipeline.broker.transport`: a message is taken and recorded as taken
  in one step (:mod:`pipeline.broker.fetch`); queue items that are not messages
  are set aside instead of stopping the worker; held messages stay visible
  while the worker lives (:mod:`pipeline.broker.qos`).
* :mod:`pipeline.broker.consumer`: messages Celery refuses are set aside too.
* :mod:`pipeline.broker.setaside`: the set-aside list an operator reads.
"""
