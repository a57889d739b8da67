"""A resumed agent on the embedded model restores its KV cache instead of re-reading the whole prompt."""

from __future__ import annotations

import pickle

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
        path = tmp_path / "other.kv"
        session.backend.save_cache(path)
        payload = pickle.loads(path.read_bytes())
        payload["fingerprint"]["n_ctx"] = 1
        path.write_bytes(pickle.dumps(payload))
        assert session.backend.load_cache(path) == 0
        path.write_bytes(b"garbage")
        assert session.backend.load_cache(path) == 0
        assert session.backend._llm.n_tokens == 0
    finally:
        session.close()
