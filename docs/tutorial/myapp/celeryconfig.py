"""myapp's Celery settings, on top of the pipeline's defaults."""

# The broker from $PIPELINE_BROKER_URL (the Redis myapp used before), JSON only, late
# acknowledgement, one Redis list per priority level, STARTED tracked...
from pipeline.app.defaults import *  # noqa: F403

# What myapp had already: its own queue.
task_default_queue = "myapp"

# The pipeline's settings: one running job per user (the default), and at most
# two of myapp's jobs at once in the whole system.
pipeline_capacity_user = 1
pipeline_concurrency_global = 2
