"""Drafts looked up in the prompt, on the real model: they change how many batches a reply takes, not the reply."""

from __future__ import annotations

import pytest

from memagent.functions.memory import builtin_functions
from memagent.llm.backends.embedded import EmbeddedBackend
from memagent.llm.constraint import build_constraint
from memagent.llm.types import CompletionRequest
from memagent.llm.wrappers.registry import create_wrapper

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def backend():
    made = EmbeddedBackend(context_length=2048, temperature=0.0)  # greedy: one right answer to compare
    yield made
    made.close()


def agent_prompt() -> tuple[str, CompletionRequest]:
    wrapper = create_wrapper("chatml", constrained=True)
    schemas = [f.schema for f in builtin_functions().select(["send_message", "archival_memory_search"])]
    earlier = '{"function": "send_message", "params": {"inner_thoughts": "Greet Ann.", "message": "Hello Ann!"}}'
    prompt = wrapper.chat_completion_to_prompt(
        [{"role": "system", "content": "You are a helpful agent. The user's name is Ann."},
         {"role": "user", "content": '{"type": "user_message", "message": "Hi! I am Ann.", "time": "now"}'},
         {"role": "assistant", "content": earlier},
         {"role": "user", "content": '{"type": "user_message", "message": "Say hello again.", "time": "now"}'}],
        schemas,
    )
    constraint = build_constraint(wrapper.output_schema(schemas))
    return wrapper.name, CompletionRequest(prompt, wrapper.stop, 80, constraint)


def test_greedy_replies_are_the_same_with_and_without_drafts(backend, monkeypatch):
    _, request = agent_prompt()
    with_drafts = backend.generate(request)
    drafted = backend.last_generation
    backend._llm.reset()
    monkeypatch.setattr(backend, "_last", ("", []))
    monkeypatch.setattr(backend, "draft_tokens", 0)
    without = backend.generate(request)
    assert with_drafts.text == without.text and with_drafts.text.startswith('{"function": "')
    assert drafted.accepted > 10  # the call's structure, at least, came from the earlier call in the prompt
    assert backend.last_generation.drafted == 0


def test_after_a_reply_the_kv_cache_holds_exactly_the_prompt_and_the_reply(backend):
    _, request = agent_prompt()
    completion = backend.generate(request)
    llm = backend._llm
    held = list(llm.input_ids[: llm.n_tokens])
    prompt_tokens = backend._prompt_tokens(request.prompt)
    assert held == prompt_tokens + backend.last_generation.tokens[: len(held) - len(prompt_tokens)]
    assert len(held) >= len(prompt_tokens) + len(backend.last_generation.tokens) - 1
    turn = "<|im_end|>\n<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n"
    follow = request.prompt + completion.text + turn
    again = backend.generate(CompletionRequest(follow, request.stop, 4, request.constraint))
    assert again.prompt_tokens_evaluated is not None and again.prompt_tokens_evaluated <= 16  # only the new part
