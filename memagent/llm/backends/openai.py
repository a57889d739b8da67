"""The OpenAI API (or a proxy speaking it) with NATIVE function calling: no wrapper, no raw prompt.

The model gets our functions as `tools` and answers with `tool_calls`; this backend translates both ways
between those and the MemGPT-style messages the agent keeps (`function_call` on assistant messages,
`function` role for results). The API key comes from the constructor: reading `OPENAI_API_KEY` is the
caller's job, so this module never looks at the environment.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from memagent.errors import BackendError, UnsupportedOperation
from memagent.llm.backends.base import Completion, CompletionRequest, estimate_tokens
from memagent.llm.backends.http import HTTPBackend, as_int, dig, finish_reason
from memagent.llm.types import Capabilities

DEFAULT_CONTEXT_LENGTH = 8192  # conservative; pass the model's real window to use more of it


class OpenAIBackend(HTTPBackend):
    name = "openai"
    label = "OpenAI API"
    default_endpoint = "https://api.openai.com"
    completion_path = "/v1/chat/completions"
    default_context_length = DEFAULT_CONTEXT_LENGTH
    capabilities = Capabilities(
        raw_completion=False, native_function_calls=True, needs_model_name="e.g. gpt-4o-mini", streams=False
    )

    def chat_completion(
        self, messages: Sequence[dict[str, Any]], functions: Sequence[dict[str, Any]]
    ) -> tuple[dict[str, Any], Completion]:
        """One chat turn: returns the assistant message (MemGPT shape) and its stop reason and usage."""
        body: dict[str, Any] = {**self.settings, "model": self.model}
        body["messages"] = to_openai_messages(messages)
        if functions:  # the API rejects an empty tools list, and tool_choice without tools
            body["tools"] = [{"type": "function", "function": dict(f)} for f in functions]
            body["tool_choice"] = "auto"
        data = self.server.post_json(self.completion_path, body)
        message = dig(data, "choices", 0, "message")
        if not isinstance(message, dict):
            raise self.wording.shape_error(self.completion_path, "`choices[0].message`")
        reply = from_openai_message(message)
        if not reply.get("content") and "function_call" not in reply:
            self.wording.require_text("", self.completion_path, "a message")  # raises the transient "no text" error
        usage = found if isinstance(found := data.get("usage"), dict) else {}
        return reply, Completion(
            text=reply.get("content") or "",
            finish_reason=finish_reason(dig(data, "choices", 0, "finish_reason")),
            prompt_tokens=as_int(usage.get("prompt_tokens")),
            completion_tokens=as_int(usage.get("completion_tokens")),
        )

    def generate(self, request: CompletionRequest) -> Completion:
        raise UnsupportedOperation(
            "The openai backend only does chat with native function calling; it can't run a raw prompt. "
            "For a local server with /v1/completions use --backend openai-completions."
        )

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)


def to_openai_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """MemGPT messages -> OpenAI chat messages.

    An assistant `function_call` becomes a one-element `tool_calls` with id `call_<index>` (deterministic,
    so the same history always gives the same request), and the next `function` message becomes a
    `tool` message answering that id. A function result with no call before it (the call was summarized
    away) would be rejected by the API, so it is sent as a user message saying what it is."""
    converted: list[dict[str, Any]] = []
    pending: str | None = None
    for index, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        call = message.get("function_call")
        if role == "assistant" and isinstance(call, dict):
            pending = f"call_{index}"
            arguments = call.get("arguments", "{}")
            function = {"name": call.get("name"), "arguments": _json_string(arguments)}
            converted.append(
                {
                    "role": "assistant",
                    "content": content,
                    "tool_calls": [{"id": pending, "type": "function", "function": function}],
                }
            )
        elif role == "function" and pending is not None:
            converted.append({"role": "tool", "tool_call_id": pending, "content": content})
            pending = None
        elif role == "function":
            note = f"[result of function {message.get('name')}] {content}"
            converted.append({"role": "user", "content": note})
        else:
            converted.append({k: v for k, v in message.items() if k in ("role", "content", "name")})
    return converted


def from_openai_message(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI assistant message -> MemGPT shape, taking the first tool call (or legacy function_call)."""
    reply: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    call = dig(message, "tool_calls", 0, "function") or message.get("function_call")
    if isinstance(call, dict) and call.get("name"):
        arguments = _json_string(call.get("arguments", "{}"))
        reply["function_call"] = {"name": call["name"], "arguments": arguments}
    return reply


def _json_string(arguments: Any) -> str:
    """OpenAI sends arguments as a JSON string; some compatible servers send the object itself."""
    if isinstance(arguments, str):
        return arguments
    try:
        return json.dumps(arguments)
    except (TypeError, ValueError) as exc:
        raise BackendError(f"Function arguments that can't be written as JSON: {arguments!r}") from exc
