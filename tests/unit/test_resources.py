"""Declared resources: what a task fixes, what a call adds, and the 1-10 scale of older queues."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from pipeline.errors import InvalidJobError
from pipeline.job.task import PipelineTask
from pipeline.locks.resources import demand_from_options
from pipeline.priority import Priority, from_seed_scale


def test_a_shared_call_reads_its_own_models_but_never_weakens_the_tasks() -> None:
    demand = demand_from_options({"shared": True, "models": ["x"]}, ("bert",))
    assert demand.models == ("bert",) and demand.shared_models == ("x",)
    demand = demand_from_options({"shared": True}, ("bert",))
    assert demand.models == ("bert",) and demand.shared_models == ()


def test_models_fixed_on_a_task_are_checked_when_it_is_defined() -> None:
    app = Celery(set_as_current=False)

    @app.task(base=PipelineTask, models="bert", shared=False)
    def one() -> None: ...

    assert one.models == ("bert",), "one name is one model, not one per letter"
    for bad in (("",), ("a\nb",), 3):
        @app.task(base=PipelineTask, models=bad, name=f"bad{bad!r}", shared=False)
        def broken() -> None: ...

        with pytest.raises(InvalidJobError, match="models"):
            _ = broken.models


@pytest.mark.parametrize(("value", "level"), [
    (1, Priority.HIGH), (3, Priority.HIGH), (4, Priority.NORMAL), (5, Priority.NORMAL),
    (7, Priority.NORMAL), (8, Priority.LOW), (10, Priority.LOW)])
def test_seed_scale_maps_high_medium_low_onto_the_levels(value: int, level: Priority) -> None:
    assert from_seed_scale(value) == int(level)


@pytest.mark.parametrize("value", [0, 11, "5", True, None])
def test_seed_scale_refuses_what_is_not_1_to_10(value: Any) -> None:
    with pytest.raises(InvalidJobError, match="1-10"):
        from_seed_scale(value)


@pytest.mark.parametrize(("typo", "meant"), [
    ("model", "models"), ("modles", "models"), ("users", "user"), ("projects", "project"),
    ("share", "shared"), ("shared_models", "models"), ("Model", "models"),
    ("user_id", "user"), ("username", "user"), ("proj", "project"), ("model_names", "models"),
    ("readonly", "shared"), ("read_only", "shared"), ("owner", "user")])
def test_a_misspelt_resource_option_is_refused_not_dropped(typo: str, meant: str) -> None:
    from pipeline.locks.resources import check_option_names

    with pytest.raises(InvalidJobError, match=rf"{typo}=.*did you mean {meant}="):
        check_option_names({"priority": 6, typo: "x"})


def test_other_unknown_options_stay_message_properties_as_in_celery() -> None:
    from pipeline.locks.resources import check_option_names

    check_option_names({"gpu": "a100", "countdown": 3, "models": ["m"], "trace_id": "t",
                        "thread_name": "t", "spread": 2})


def test_celery_stamps_are_not_taken_for_misspelt_resource_options() -> None:
    from pipeline.locks.resources import check_option_names

    check_option_names({"users": "ops", "stamped_headers": ["users"]})


def test_models_given_by_a_property_are_read_per_instance() -> None:
    class Dynamic(PipelineTask):  # type: ignore[misc]
        @property
        def models(self) -> tuple[str, ...]:  # type: ignore[override]
            return ("bert",)

    from pipeline.locks.resources import declared_models

    assert Dynamic().models == ("bert",)
    assert declared_models(Dynamic()) == (("bert",), ())

    class Broken(PipelineTask):  # type: ignore[misc]
        @property
        def models(self) -> str:  # type: ignore[override]
            return "a\nb"

    with pytest.raises(InvalidJobError, match="models"):
        declared_models(Broken())


def test_models_a_task_gets_from_a_mixin_are_checked_too() -> None:
    class Mixin:
        models = ("a\nb",)

    with pytest.raises(InvalidJobError, match="models"):
        class Mixed(Mixin, PipelineTask):  # type: ignore[misc]
            pass
