"""The job header: one encode, one decode, a version that refuses what it cannot read."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import InvalidJobError
from pipeline.locks.resources import Demand
from pipeline.messages.header import EMPTY, NAME, VERSION, JobHeader, of_request


def test_a_header_survives_json_and_back_with_readable_field_names() -> None:
    header = JobHeader(user="alice", project="nlp", models=("bert",), shared_models=("gpt",),
                       workflow="wf-1", workflow_name="retrain", steps=3, step=2, priority=3,
                       submitted_at=1764165131.123456)
    wire = json.loads(json.dumps(header.encode()))
    assert wire == {"version": VERSION, "user": "alice", "project": "nlp",
                    "models": ["bert"], "shared_models": ["gpt"], "workflow": "wf-1",
                    "workflow_name": "retrain", "steps": 3, "step": 2, "priority": 3,
                    "submitted_at": 1764165131.123456}
    assert JobHeader.decode(wire) == header
    assert header.is_later_step and not header.but(step=1).is_later_step


def test_unset_fields_are_left_out_of_the_message() -> None:
    assert JobHeader().encode() == {"version": VERSION}
    assert JobHeader.of(Demand(models=("m",))).encode() == {"version": VERSION,
                                                            "models": ["m"]}


def test_a_missing_header_reads_as_the_empty_one() -> None:
    assert JobHeader.decode(None) is EMPTY
    assert JobHeader.decode({}) is EMPTY

    class Request:
        pass

    assert of_request(Request()) is EMPTY


def test_a_header_from_a_newer_release_is_refused_saying_so() -> None:
    with pytest.raises(InvalidJobError, match=r"version=2 is newer .* upgrade this worker"):
        JobHeader.decode({"version": VERSION + 1, "models": ["m"]})


@pytest.mark.parametrize(("raw", "field"), [
    ({"models": ["m"]}, "version"),
    ({"version": "1"}, "version"),
    ({"version": 1, "models": "bert"}, "models"),
    ({"version": 1, "user": 7}, "user"),
    ({"version": 1, "step": "2"}, "step"),
    ({"version": 1, "submitted_at": "now"}, "submitted_at"),
    (["not", "an", "object"], NAME),
])
def test_a_malformed_header_is_refused_naming_the_field(raw: object, field: str) -> None:
    with pytest.raises(InvalidJobError, match=rf"{field}.*not accepted"):
        JobHeader.decode(raw)


def test_the_demand_of_a_header_is_what_it_declares() -> None:
    header = JobHeader(user="u", project="p", models=("a",), shared_models=("b",), workflow="w")
    assert header.demand == Demand("u", "p", ("a",), ("b",), "w")
    assert JobHeader.of(header.demand) == header
