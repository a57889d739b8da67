"""The openai backend: native function calling, no wrapper prompt, same parser and validation."""

from __future__ import annotations

import json

import httpx

from memagent.agent.context import (
    SUMMARIZER_SYSTEM,
    SUMMARY_PLACEHOLDER,
    choose_cutoff,
    summary_alert_text,
    transcript_line,
)
from memagent.llm.backends.openai import OpenAIBackend
from memagent.messages import message_from_dict


def test_an_agent_on_native_function_calling(make_agent, events):
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        message = {"role": "assistant", "content": "Greet him.", "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "send_message", "arguments": json.dumps({"message": "Hello Brad!"})}}]}
        return httpx.Response(200, json={"choices": [{"message": message, "finish_reason": "tool_calls"}],
                                         "usage": {"prompt_tokens": 900, "completion_tokens": 12}})

    backend = OpenAIBackend("http://127.0.0.1:9", model="gpt-test", api_key="sk-secret",
                            transport=httpx.MockTransport(handler))
    agent, _ = make_agent(backend=backend)
    agent.run_turn("My name is Brad", events)
    assert [e.text for e in events.of("assistant_message")] == ["Hello Brad!"]
    assert events.of("inner_thoughts")[0].text == "Greet him."
    sent = bodies[0]
    assert sent["model"] == "gpt-test" and sent["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in sent["tools"]][:2] == ["send_message", "pause_heartbeats"]
    assert sent["messages"][0]["role"] == "system" and "### Memory" in sent["messages"][0]["content"]
    assert "My name is Brad" in sent["messages"][-1]["content"]


def test_a_summary_on_native_function_calling_goes_through_the_chat_api(make_agent, events, store):
    """The openai backend runs no raw prompt: its summary is one chat turn without tools, and lands in the alert."""
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if "tools" not in body:  # the summarizer's request
            message = {"role": "assistant", "content": "  Brad told me his name; I greeted him.  "}
            return httpx.Response(200, json={"choices": [{"message": message, "finish_reason": "stop"}]})
        message = {"role": "assistant", "content": "Greet him.", "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "send_message", "arguments": json.dumps({"message": "Hello Brad!"})}}]}
        return httpx.Response(200, json={"choices": [{"message": message, "finish_reason": "tool_calls"}]})

    backend = OpenAIBackend("http://127.0.0.1:9", model="gpt-test", api_key="sk-secret", temperature=0.1,
                            transport=httpx.MockTransport(handler))
    assert not backend.capabilities.raw_completion and backend.capabilities.native_function_calls
    agent, _ = make_agent(backend=backend)
    agent.run_turn("My name is Brad", events)
    agent.run_turn("I drink tea", events)
    before = [m for _, m in agent.messages]
    cutoff = choose_cutoff([backend.count_tokens(json.dumps(m, ensure_ascii=False)) for m in before],
                           [m["role"] for m in before])
    transcript = "\n".join(transcript_line(message_from_dict(m)) for m in before[:cutoff])
    assert "USER: My name is Brad" in transcript
    stored_before = store.count_messages(agent.agent_id)

    assert agent.summarize(events) is True
    assert bodies[-1] == {
        "temperature": 0.1,
        "model": "gpt-test",
        "messages": [{"role": "system", "content": SUMMARIZER_SYSTEM}, {"role": "user", "content": transcript}],
    }
    assert events.of("system_alert")[-1].data["summary"] == "Brad told me his name; I greeted him."
    alert_id, alert = agent.messages[0]
    expected = summary_alert_text("Brad told me his name; I greeted him.", cutoff, stored_before)
    assert json.loads(alert["content"])["message"] == expected
    assert SUMMARY_PLACEHOLDER not in alert["content"]
    [stored] = store.get_messages(agent.agent_id, [alert_id])
    assert stored.payload == alert
