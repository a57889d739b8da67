"""The openai backend: native function calling, no wrapper prompt, same parser and validation."""

from __future__ import annotations

import json

import httpx

from memagent.llm.backends.openai import OpenAIBackend


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
