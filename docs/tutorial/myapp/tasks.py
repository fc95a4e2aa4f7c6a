"""myapp's jobs: a training writes a model, an evaluation reads it."""

import time

from myapp.celery import app
from pipeline import PipelineTask


@app.task(base=PipelineTask, models=("bert",))          # before: @app.task
def train(epochs: int) -> str:
    """Train bert: no other job may write or read it meanwhile."""
    time.sleep(0.5 * epochs)
    return f"bert trained for {epochs} epoch(s)"


@app.task(base=PipelineTask, shared_models=("bert",))   # before: @app.task
def evaluate(dataset: str) -> str:
    """Evaluate bert: readers share it, a training excludes them."""
    time.sleep(0.2)
    return f"bert evaluated on {dataset}"
