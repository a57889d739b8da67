"""End to end on the real embedded SmolLM2-135M through the CLI, in scripted mode."""

from __future__ import annotations

import pytest
from clihelp import json_events, run_cli

from memagent.memory.store import Store

pytestmark = pytest.mark.real_model

MESSAGES = ["My name is Brad", "I live in Lisbon and I like sailing", "What is my name?"]


@pytest.fixture(scope="module")
def conversation(tmp_path_factory):
    home = tmp_path_factory.mktemp("real") / "home"
    first = run_cli(["chat", "--agent", "t1", "--json"], home, stdin="\n".join(MESSAGES) + "\n")
    second = run_cli(["chat", "--agent", "t1", "--json"], home, stdin="Do you remember me?\n/dump\n")
    return home, first, second


def test_every_step_produces_a_valid_call_and_replies_reach_the_user(conversation):
    _, first, _ = conversation
    assert first.returncode == 0, first.stderr
    events = json_events(first.stdout)
    assert [e["text"] for e in events if e["type"] == "user_message"] == MESSAGES
    assert not [e for e in events if e["type"] in ("error", "retry")], first.stdout
    calls = [e for e in events if e["type"] == "function_call"]
    returns = [e for e in events if e["type"] == "function_return"]
    assert calls and len(calls) == len(returns)
    replies = [e for e in events if e["type"] == "assistant_message"]
    assert len(replies) >= len(MESSAGES) and all(r["text"].strip() for r in replies)
    assert "Traceback" not in first.stderr


def test_messages_are_in_the_database(conversation):
    home, _, _ = conversation
    store = Store(home / "memagent.db")
    try:
        agent = store.find_agent("t1")
        assert agent is not None
        assert store.search_messages(agent.id, "Brad").total >= 1
        assert store.search_messages(agent.id, "Lisbon sailing").total >= 1
        assert store.count_messages(agent.id) >= 3 * len(MESSAGES)
    finally:
        store.close()


def test_a_second_process_resumes_the_agent_with_its_history(conversation):
    _, _, second = conversation
    assert second.returncode == 0, second.stderr
    events = json_events(second.stdout)
    assert events[0]["type"] == "info" and events[0]["created"] is False
    dump = [e["text"] for e in events if e["type"] == "info"][-1]
    assert "My name is Brad" in dump and "Do you remember me?" in dump
    assert [e for e in events if e["type"] == "assistant_message"]
