"""The model layer's plain values: the request a completion is asked with, and what complete() hands on."""

from __future__ import annotations

import dataclasses

import pytest

from memagent.llm import constraint as constraint_module
from memagent.llm.backends import base
from memagent.llm.types import Completion, CompletionRequest, Constraint
from tests.fakes import ScriptedBackend

CONSTRAINT = Constraint(json_schema={"type": "string"}, gbnf='root ::= "x"')


def test_complete_builds_the_request_generate_receives() -> None:
    backend = ScriptedBackend(["out"])
    pieces: list[str] = []
    completion = backend.complete("the prompt", stop=["<|im_end|>", "\n"], max_tokens=7, constraint=CONSTRAINT,
                                  on_text=pieces.append)
    assert completion.text == "out" and pieces == ["out"]
    assert backend.requests == [
        CompletionRequest("the prompt", ("<|im_end|>", "\n"), 7, CONSTRAINT, pieces.append)
    ]


def test_complete_fills_the_defaults() -> None:
    backend = ScriptedBackend(["out"])
    backend.complete("p")
    assert backend.requests == [CompletionRequest("p", (), 512, None, None)]


def test_a_request_is_frozen_and_its_stops_a_tuple() -> None:
    request = CompletionRequest("p", stop=("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.prompt = "q"  # type: ignore[misc]
    assert hash(CompletionRequest("p")) == hash(CompletionRequest("p"))


def test_the_old_import_paths_still_work() -> None:
    assert base.Constraint is Constraint and base.Completion is Completion
    assert constraint_module.Constraint is Constraint
