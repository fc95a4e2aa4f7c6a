"""Default time limits: the pipeline's for a job that sets none, the job's own otherwise."""

from __future__ import annotations

import pytest
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

from pipeline import PipelineTask, conf
from pipeline.job.limits import apply_default_time_limits, default_time_limits
from pipeline.job.retries import policy_for

DEFAULTS = conf.read({})


@pytest.mark.parametrize(("own", "limits"), [
    ((None, None), (300.0, 330.0)),        # the pipeline's: 300 s soft, 30 s more hard
    ((600.0, None), (600.0, 630.0)),       # the job's soft limit, a hard one after it
    ((None, 60.0), (None, 60.0)),          # the job's hard limit alone
    ((10.0, 20.0), (10.0, 20.0)),          # the job's own
])
def test_a_jobs_own_limits_win_over_the_default(
        own: tuple[float | None, float | None], limits: tuple[float | None, float | None]
) -> None:
    assert default_time_limits(*own, DEFAULTS) == limits


def test_a_limit_of_zero_means_none() -> None:
    assert default_time_limits(None, None, conf.read({"pipeline_time_limit": 0})) == (None, None)


def test_the_worker_gives_the_default_to_pipeline_tasks_only() -> None:
    app = Celery("limits-test", set_as_current=False)
    app.conf.pipeline_time_limit = 5.0

    @app.task(base=PipelineTask, name="t.default")
    def default() -> None: ...

    @app.task(base=PipelineTask, name="t.own", time_limit=7)
    def own() -> None: ...

    @app.task(name="t.plain")
    def plain() -> None: ...

    changed = apply_default_time_limits(app)    # (with shared tasks other modules define)
    assert "t.default" in changed and "t.own" not in changed and "t.plain" not in changed
    assert (default.soft_time_limit, default.time_limit) == (5.0, 35.0)
    assert (own.soft_time_limit, own.time_limit) == (None, 7)
    assert (plain.soft_time_limit, plain.time_limit) == (None, None)


def test_a_job_stopped_by_its_soft_limit_is_not_retried_unless_the_task_asks() -> None:
    class Default:
        retry_for = None

    class Asks:
        retry_for = (SoftTimeLimitExceeded,)

    assert not policy_for(Default(), DEFAULTS).retries(SoftTimeLimitExceeded())
    assert policy_for(Default(), DEFAULTS).retries(RuntimeError())
    assert policy_for(Asks(), DEFAULTS).retries(SoftTimeLimitExceeded())
