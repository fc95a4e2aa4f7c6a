"""Settings: an unknown ``pipeline_*`` key or a wrongly typed value is an error that names it."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from pipeline import conf
from pipeline.app.install import install
from pipeline.errors import ConfigurationError


@pytest.mark.parametrize("key", ["pipeline_lock_lese", "pipeline_capacity_gpu", "PIPELINE_FOO"])
def test_unknown_setting_is_rejected_by_name(key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        conf.read({key: 1})
    message = str(caught.value)
    assert key in message
    assert "pipeline_lock_lease" in message  # says what is known


@pytest.mark.parametrize(("key", "value"), [
    ("pipeline_lock_lease", "30"),
    ("pipeline_capacity_user", 1.5),
    ("pipeline_capacity_user", True),
    ("pipeline_serialized", "yes"),
    ("pipeline_redis_prefix", 7),
    ("pipeline_store_url", 5),
])
def test_wrongly_typed_setting_is_rejected_naming_setting_value_and_type(
        key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        conf.read({key: value})
    message = str(caught.value)
    assert key in message
    assert repr(value) in message
    assert "expected" in message


def test_value_below_minimum_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"pipeline_lock_lease=0\.5"):
        conf.read({"pipeline_lock_lease": 0.5})


def test_other_celery_settings_are_not_pipeline_business() -> None:
    settings = conf.read({"broker_url": "redis://x", "task_acks_late": True})
    assert settings.lease == 30.0


def test_wrongly_typed_environment_variable_is_rejected_by_name() -> None:
    with pytest.raises(ConfigurationError, match="PIPELINE_CAPACITY_USER='many'"):
        conf.from_environ({"PIPELINE_CAPACITY_USER": "many"})


def test_unknown_setting_in_an_app_configuration_is_rejected_when_read() -> None:
    app = install(Celery("conf-test", set_as_current=False))
    app.config_from_object({"pipeline_lock_lese": 3, "broker_url": "memory://"})
    with pytest.raises(ConfigurationError, match="pipeline_lock_lese"):
        conf.read(app.conf)


def test_every_setting_has_a_doc_and_a_default_of_its_type() -> None:
    for setting in conf.SETTINGS:
        assert setting.name.startswith("pipeline_")
        assert setting.doc.strip()
        conf.check_value(setting, setting.default)


def test_defaults_fill_in_what_the_config_leaves_out() -> None:
    app = install(Celery("conf-defaults", set_as_current=False))
    app.config_from_object({"broker_url": "memory://"})
    settings = conf.read(app.conf)
    assert settings.lease == 30.0
    assert settings.redis_prefix == "pipeline"
    assert settings.capacity_user == 1


def test_config_module_values_win_over_defaults() -> None:
    app = install(Celery("conf-precedence", set_as_current=False))
    app.config_from_object({"broker_url": "memory://", "pipeline_lock_lease": 2.0,
                            "pipeline_capacity_user": 3})
    settings = conf.read(app.conf)
    assert (settings.lease, settings.capacity_user) == (2.0, 3)


def test_environment_variables_set_declared_settings() -> None:
    found = conf.from_environ({"PIPELINE_LOCK_LEASE": "2.5", "PIPELINE_SERIALIZED": "yes",
                               "PIPELINE_BROKER_URL": "redis://elsewhere"})
    assert found == {"pipeline_lock_lease": 2.5, "pipeline_serialized": True}
    with pytest.raises(ConfigurationError, match="PIPELINE_CAPACITY_USER='many'"):
        conf.from_environ({"PIPELINE_CAPACITY_USER": "many"})
