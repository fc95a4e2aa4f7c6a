"""Submit three of myapp's jobs and print how each one ended: ``python -m myapp.submit``."""

import time

from myapp.tasks import evaluate, train

first = train.apply_async((2,), user="alice")                    # takes bert
while first.state == "PENDING":                                  # until it has started
    time.sleep(0.05)
jobs = [
    first,
    train.apply_async((1,), user="bob", priority="high"),           # waits for bert
    evaluate.apply_async(("holdout",), user="carol", priority="low"),  # reads bert after
]
for job in jobs:
    print(job.id, "submitted")
for job in jobs:
    print(job.id, job.get(timeout=60))
