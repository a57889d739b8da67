"""A resumed agent on the embedded model restores its KV cache instead of re-reading the whole prompt."""

from __future__ import annotations

import json

import pytest
from fakes import Recorder

from memagent.app import open_session
from memagent.settings import Settings

pytestmark = pytest.mark.real_model


def test_a_resumed_agent_evaluates_only_its_new_tokens(tmp_path):
    settings = Settings(home=tmp_path, agent="cached", no_verify=True)
    first = open_session(settings)
    try:
        first.agent.run_turn("Hello, I am Brad.", Recorder())
        cold = first.agent.last_completion
    finally:
        first.close()
    cache = tmp_path / "cache" / "cached.kv"
    assert cache.is_file()

    second = open_session(settings)
    try:
        assert second.backend._llm.n_tokens > 1000  # restored before any generation
        second.agent.run_turn("Do you remember my name?", Recorder())
        warm = second.agent.last_completion
    finally:
        second.close()
    assert cold.prompt_tokens_evaluated > 1000
    assert warm.prompt_tokens > cold.prompt_tokens
    assert warm.prompt_tokens_evaluated < 200, warm


def test_a_cache_from_another_model_or_a_damaged_file_is_ignored(tmp_path):
    settings = Settings(home=tmp_path, agent="stale", no_verify=True)
    session = open_session(settings)
    try:
        session.agent.run_turn("Hello, I am Brad.", Recorder())
        backend = session.backend
        path = tmp_path / "other.kv"
        backend.save_cache(path)
        header = backend.cache_header(path)
        assert backend.load_cache(path) > 1000  # the saved cache itself restores

        fingerprint = json.loads(header.read_text())
        header.write_text(json.dumps({**fingerprint, "n_ctx": 1}))
        assert backend.load_cache(path) == 0  # not loaded: the live state stays as it was

        header.write_text(json.dumps(fingerprint))
        path.write_bytes(b"garbage")
        assert backend.load_cache(path) == 0
        assert backend._llm.n_tokens == 0

        header.unlink()
        assert backend.load_cache(path) == 0
    finally:
        session.close()
