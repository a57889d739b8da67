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


def test_a_second_new_agent_starts_from_the_prompt_start_the_first_one_evaluated(tmp_path):
    evaluated = []
    for name in ("first-agent", "second-agent"):
        session = open_session(Settings(home=tmp_path, agent=name, no_verify=True))
        try:
            session.agent.run_turn("Hello, I am Brad.", Recorder())
            completion = session.agent.last_completion
            evaluated.append((completion.prompt_tokens, completion.prompt_tokens_evaluated))
        finally:
            session.close()
    assert len(list((tmp_path / "cache" / "prefix").glob("prefix-*.kv"))) == 1
    (first_total, first_evaluated), (second_total, second_evaluated) = evaluated
    assert first_evaluated == first_total  # the first agent on this machine pays once
    assert second_evaluated < second_total - 1000  # instructions and functions came from the shared file


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


def test_a_new_agent_starts_from_the_shared_prefix_and_answers_the_same(tmp_path):
    from memagent.llm.backends.embedded import EmbeddedBackend
    from memagent.llm.types import CompletionRequest

    shared = "<|im_start|>system\nYou are a helpful assistant who answers in one short sentence. " * 8
    prompts = [shared + f"The user is {name}.<|im_end|>\n<|im_start|>user\nWho am I?<|im_end|>\n<|im_start|>assistant\n"
               for name in ("Brad", "Ann")]
    results = []
    for prompt, folder in ((prompts[0], tmp_path), (prompts[1], tmp_path), (prompts[1], None)):
        prefix_cache = folder / "prefix" if folder else None
        backend = EmbeddedBackend(context_length=1024, prefix_cache=prefix_cache)  # a new process each time
        try:
            request = CompletionRequest(prompt, max_tokens=12, stop=("<|im_end|>",), shared_prefix=len(shared))
            completion = backend.generate(request)
            results.append((completion, backend.count_tokens(prompt) - backend.count_tokens(shared)))
        finally:
            backend.close()
    (cold, _), (warm, own_tokens), (uncached, _) = results
    assert len(list((tmp_path / "prefix").glob("prefix-*.kv"))) == 1  # one file for the shared part
    assert cold.prompt_tokens_evaluated == cold.prompt_tokens  # the first agent pays once
    assert warm.prompt_tokens_evaluated <= own_tokens + 2  # the next one evaluates only its own part
    assert uncached.prompt_tokens_evaluated == uncached.prompt_tokens
    assert warm.text == uncached.text  # restored or evaluated, the same numbers: the same answer
