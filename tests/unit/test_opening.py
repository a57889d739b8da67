"""The session opened behind the first prompt (cli/opening.py): started once, its result or its error handed to the
main thread, and a failure reported to whoever is waiting at the prompt, even if it came first."""

from __future__ import annotations

import threading

import pytest

from memagent.cli.opening import Opening
from memagent.errors import ModelFileError


class FakeSession:
    agent = "the agent"


def test_nothing_opens_before_start_and_start_is_idempotent() -> None:
    calls: list[int] = []
    opening = Opening(lambda: calls.append(1) or FakeSession())  # type: ignore[func-returns-value,arg-type]
    assert calls == [] and opening.agent_if_open() is None
    opening.start()
    opening.start()
    assert opening.wait().agent == "the agent" and calls == [1]
    assert opening.agent_if_open() == "the agent"


def test_wait_starts_it_and_raises_what_opening_raised() -> None:
    opening = Opening(lambda: (_ for _ in ()).throw(ModelFileError("Model file not found: x.gguf.")))
    with pytest.raises(ModelFileError, match="x.gguf"):
        opening.wait()
    assert opening.agent_if_open() is None


def test_a_failure_reaches_the_prompt_whether_it_waits_already_or_arrives_later() -> None:
    release = threading.Event()

    def slow_failure() -> FakeSession:
        release.wait()
        raise ModelFileError("bad model")

    told: list[str] = []
    opening = Opening(slow_failure)
    opening.start()
    opening.when_failed(lambda: told.append("early"))
    release.set()
    with pytest.raises(ModelFileError):
        opening.wait()
    assert told == ["early"]
    opening.when_failed(lambda: told.append("late"))  # registered after the failure: told at once
    assert told == ["early", "late"]
    opening.when_failed(None)


def test_a_success_tells_no_one() -> None:
    told: list[str] = []
    opening = Opening(FakeSession)  # type: ignore[arg-type]
    opening.when_failed(lambda: told.append("failed"))
    opening.start()
    opening.wait()
    opening.when_failed(lambda: told.append("failed"))
    assert told == []
