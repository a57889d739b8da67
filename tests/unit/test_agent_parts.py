"""The agent's collaborators used alone (issue 17): each is built from the one below it, and the package's modules
import one way only (Agent -> step -> generate -> context -> history -> state; edits -> history)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fakes import ScriptedBackend, call, reply

import memagent.agent
from memagent.agent.context import ContextWindow
from memagent.agent.generate import CallGenerator
from memagent.agent.outcomes import RunAgain
from memagent.agent.state import AgentConfig
from memagent.agent.step import StepRunner
from memagent.errors import ContextOverflowError, LLMOutputError
from memagent.memory.store import Store

# Top first: a module may import only modules below it.
ORDER = ("__init__", "agent", "edits", "step", "generate", "context", "history", "outcomes", "state")


def window(make_agent, outputs, **kwargs) -> tuple[ContextWindow, ScriptedBackend]:
    agent, backend = make_agent(outputs, **kwargs)
    return ContextWindow(agent.history, backend, agent.wrapper, agent.functions, AgentConfig()), backend


def test_the_generator_corrects_unusable_output_without_storing_anything(make_agent, events, store):
    context, backend = window(make_agent, ["not a call", reply("Hi!")])
    before = store.count_messages(context.history.agent_id)
    parsed, completion = CallGenerator(context, AgentConfig()).generate(events)
    assert (parsed.name, parsed.arguments["message"]) == ("send_message", "Hi!")
    assert "Your last reply could not be used" in backend.prompts[1]
    assert "Your last reply could not be used" not in context.prompt()  # the correction was never kept
    assert store.count_messages(context.history.agent_id) == before and events.of("retry")


def test_the_generator_gives_up_after_its_tries(make_agent, events):
    context, _ = window(make_agent, ["junk"] * 3)
    with pytest.raises(LLMOutputError, match="after 3 tries"):
        CallGenerator(context, AgentConfig(max_parse_retries=2)).generate(events)


def test_the_first_reply_check_asks_again_for_a_send_message(make_agent, events):
    context, _ = window(make_agent, [call("archival_memory_insert", content="x"), reply("Hello")])
    parsed, _ = CallGenerator(context, AgentConfig()).generate(events, first_reply=True)
    assert parsed.name == "send_message" and "First reply check" in events.of("retry")[0].text


def test_the_window_refuses_a_prompt_it_cannot_make_fit(make_agent, events):
    context, backend = window(make_agent, [])
    backend._context_length = 100  # smaller than the system message alone; nothing old enough to summarize
    with pytest.raises(ContextOverflowError):
        context.fit((), events)


def test_a_step_reports_its_events_only_once_they_are_stored(make_agent, home):
    context, _ = window(make_agent, [call("archival_memory_insert", content="Brad sails", request_heartbeat=True)])
    history = context.history
    generator = CallGenerator(context, AgentConfig(verify_first_message=False))
    runner = StepRunner(history, context, generator, context.functions)
    store = Store(home / "memagent.db")  # another connection: it sees only what was committed
    before = store.count_messages(history.agent_id)
    seen = []

    def emit(event):  # how many messages and passages are stored at the moment each event is shown
        seen.append((event.type, store.count_messages(history.agent_id), store.count_passages(history.agent_id)))

    result = runner.run(emit)
    assert isinstance(result.next, RunAgain) and result.next.input.kind == "heartbeat"
    assert seen == [(kind, before + 2, 1) for kind in ("inner_thoughts", "function_call", "function_return")]
    store.close()


def imports_within_the_package() -> list[tuple[str, str]]:
    folder = Path(memagent.agent.__file__).parent
    found = []
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("memagent.agent."):
                found.append((path.stem, node.module.split(".")[2]))
    return found


def test_the_agent_package_imports_one_way():
    found = imports_within_the_package()
    assert {source for source, _ in found} >= {"agent", "context", "generate", "history"}
    assert [(s, t) for s, t in found if ORDER.index(t) <= ORDER.index(s)] == []
