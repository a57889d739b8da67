"""Shared fixtures: a real SQLite file per test, a scripted backend, and an agent wired like the app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import Recorder, ScriptedBackend

from memagent.agent import Agent
from memagent.app import open_agent
from memagent.memory.store import Store
from memagent.settings import Settings


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path):
    s = Store(home / "memagent.db")
    yield s
    s.close()


@pytest.fixture
def make_agent(home: Path, store: Store) -> Callable[..., tuple[Agent, ScriptedBackend]]:
    def make(outputs=(), *, agent: str | None = "tester", no_verify: bool = True, preset: str | None = None,
             context_length: int = 8192, constrain: bool = True, backend: ScriptedBackend | None = None):
        backend = backend or ScriptedBackend(outputs, context_length=context_length, constrain=constrain)
        settings = Settings(home=home, agent=agent, no_verify=no_verify, preset=preset)
        made, _ = open_agent(settings, store, backend)
        return made, backend

    return make


@pytest.fixture
def events() -> Recorder:
    return Recorder()
