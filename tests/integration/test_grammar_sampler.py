"""The embedded backend's grammar-last sampling on the real model: a token the grammar refuses is never returned,
the fallback that resamples under the grammar really runs, and constrained calls still parse."""

from __future__ import annotations

import pytest

from memagent.functions.memory import builtin_functions
from memagent.llm.backends.embedded import EmbeddedBackend
from memagent.llm.constraint import build_constraint
from memagent.llm.types import CompletionRequest, Constraint
from memagent.llm.wrappers.registry import create_wrapper

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def backend():
    made = EmbeddedBackend(context_length=2048)
    yield made
    made.close()


def test_a_grammar_the_model_would_not_follow_is_followed_anyway(backend):
    """The prompt asks for a story; the grammar allows two words. Sampling unconstrained first, the model's choice is
    refused and resampled under the grammar: the answer is one of the two words, every time."""
    prompt = "<|im_start|>user\nTell me a long story about a dragon.<|im_end|>\n<|im_start|>assistant\n"
    constraint = Constraint(json_schema={}, gbnf='root ::= "yes" | "no"')
    backend.temperature = 1.5
    answers, rejections = set(), 0
    try:
        for _ in range(4):
            answers.add(backend.generate(CompletionRequest(prompt, (), 8, constraint)).text)
            rejections += backend.last_generation.grammar_rejections
    finally:
        backend.temperature = 0.3
    assert answers <= {"yes", "no"} and answers
    assert rejections > 0  # the fallback ran (the model wanted to start a story)


def test_constrained_calls_at_a_high_temperature_all_parse(backend):
    wrapper = create_wrapper("chatml", constrained=True)
    schemas = [f.schema for f in builtin_functions().select(["send_message", "archival_memory_search"])]
    constraint = build_constraint(wrapper.output_schema(schemas))
    prompt = wrapper.chat_completion_to_prompt(
        [{"role": "system", "content": "You are a helpful agent."},
         {"role": "user", "content": '{"type": "user_message", "message": "Hi! What can you do?", "time": "now"}'}],
        schemas,
    )
    backend.temperature = 1.2
    try:
        outputs = [backend.generate(CompletionRequest(prompt, wrapper.stop, 96, constraint)) for _ in range(3)]
    finally:
        backend.temperature = 0.3
    for completion in outputs:
        if completion.finish_reason == "stop":  # a call cut at the token limit is the agent's to retry
            assert wrapper.parse(completion.text, schemas).name in {"send_message", "archival_memory_search"}
    assert any(c.finish_reason == "stop" for c in outputs)
