"""The wrapper seam: a prompt format plus an output parser for one family of models.

Compatible with MemGPT's LLMChatCompletionWrapper (seed 000): `chat_completion_to_prompt(messages,
functions)` -> prompt string and `output_to_chat_completion_response(raw_llm_output)` -> a ChatCompletion
style assistant message. A wrapper also declares its stop strings and the JSON schema of its output, from
which the constraint (GBNF / JSON schema) is built for backends that can enforce it.

Messages are OpenAI-style dicts: system; user (content is MemGPT's JSON envelope, e.g.
{"type": "user_message", "message": ..., "time": ...}); assistant (content = inner thoughts,
function_call = {"name", "arguments" (JSON string or dict)}); function (name, content = JSON result).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from memagent.llm.constraint import function_call_schema
from memagent.llm.parse import ParsedCall, parse_function_call

Message = dict[str, Any]
FunctionSchema = dict[str, Any]

INNER_THOUGHTS_DESCRIPTION = "Deep inner monologue private to you only."


class LLMChatCompletionWrapper(ABC):
    """Seed 000's interface, plus stop strings and an output schema."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    stop: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, constrained: bool = False) -> None:
        # Under a constraint the grammar produces the whole call, so no prefix is forced in the prompt.
        self.constrained = constrained

    @abstractmethod
    def chat_completion_to_prompt(
        self, messages: Sequence[Message], functions: Sequence[FunctionSchema], first_message: bool = False
    ) -> str:
        """Go from ChatCompletion messages and function schemas to a single prompt string."""

    @abstractmethod
    def parse(self, raw_llm_output: str, functions: Sequence[FunctionSchema] | None = None) -> ParsedCall:
        """Turn raw model output into a validated call; raises LLMOutputError."""

    def output_schema(self, functions: Sequence[FunctionSchema]) -> dict[str, Any] | None:
        """The JSON schema of this wrapper's output, or None if it can't be constrained."""
        return None

    def plain_prompt(self, system: str, user: str) -> str:
        """A prompt for a plain-text answer (the summarizer), in this wrapper's turn format."""
        return f"### SYSTEM:\n{system}\n### USER:\n{user}\n### ASSISTANT:\n"

    def output_to_chat_completion_response(
        self, raw_llm_output: str, functions: Sequence[FunctionSchema] | None = None
    ) -> Message:
        call = self.parse(raw_llm_output, functions)
        return {
            "role": "assistant",
            "content": call.inner_thoughts,
            "function_call": {"name": call.name, "arguments": call.arguments},
        }


def call_arguments(message: Message) -> dict[str, Any]:
    """The arguments of a stored assistant message's function_call, as a dict."""
    args = (message.get("function_call") or {}).get("arguments") or {}
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return {}
    return args if isinstance(args, dict) else {}


def user_text(content: str) -> str:
    """The message text inside MemGPT's user envelope, or the content itself if it isn't one."""
    try:
        envelope = json.loads(content)
    except (json.JSONDecodeError, TypeError):
        return content
    if isinstance(envelope, dict) and envelope.get("type") == "user_message":
        return str(envelope.get("message", ""))
    return content


class JSONCallWrapper(LLMChatCompletionWrapper):
    """Prompted JSON calls (MemGPT's style): every assistant turn is one JSON function call.

    Subclasses set the turn markers and, if they differ, the call keys; everything else is shared.
    """

    # Turn markers. `{text}` is replaced; none of these may add a BOS token (the backend adds it).
    system_template: ClassVar[str] = "{text}\n"
    user_template: ClassVar[str] = "USER: {text}\n"
    assistant_template: ClassVar[str] = "ASSISTANT: {text}\n"
    function_template: ClassVar[str] = "FUNCTION RETURN: {text}\n"
    generation_prompt: ClassVar[str] = "ASSISTANT: "
    # The call format.
    name_key: ClassVar[str] = "function"
    args_key: ClassVar[str] = "params"
    thoughts: ClassVar[str | None] = "params"  # "params", "top" or None
    call_start: ClassVar[str] = ""  # prefilled before the JSON (e.g. "<tool_call>\n")
    call_end: ClassVar[str] = ""
    simplify_user_messages: ClassVar[bool] = False
    instructions: ClassVar[str] = (
        "Please select the most suitable function and parameters from the list of available functions "
        "below, based on the ongoing conversation. Provide your response in JSON format."
    )

    # -- prompt ------------------------------------------------------------------------------------
    def chat_completion_to_prompt(
        self, messages: Sequence[Message], functions: Sequence[FunctionSchema], first_message: bool = False
    ) -> str:
        parts: list[str] = []
        for message in messages:
            parts.append(self.render_message(message, functions))
        parts.append(self.generation_prompt + self.call_start + self.forced_prefix(first_message))
        return "".join(parts)

    def render_message(self, message: Message, functions: Sequence[FunctionSchema]) -> str:
        role, content = message.get("role"), message.get("content") or ""
        if role == "system":
            return self.system_template.format(text=self.system_text(content, functions))
        if role == "user":
            text = user_text(content) if self.simplify_user_messages else content
            return self.user_template.format(text=text)
        if role == "assistant":
            return self.assistant_template.format(text=self.render_call(message))
        if role in ("function", "tool"):
            return self.function_template.format(text=content)
        raise ValueError(f"unknown message role {role!r}")

    def system_text(self, system: str, functions: Sequence[FunctionSchema]) -> str:
        return f"{system}\n{self.instructions}\nAvailable functions:\n{self.describe_functions(functions)}"

    def describe_functions(self, functions: Sequence[FunctionSchema]) -> str:
        """MemGPT's airoboros-style function list."""
        lines: list[str] = []
        for schema in functions:
            lines += [f"{schema['name']}:", f"  description: {schema.get('description', '')}", "  params:"]
            if self.thoughts == "params":
                lines.append(f"    inner_thoughts: {INNER_THOUGHTS_DESCRIPTION}")
            for pname, prop in schema["parameters"]["properties"].items():
                lines.append(f"    {pname}: {prop.get('description', '')}")
        return "\n".join(lines)

    def render_call(self, message: Message) -> str:
        """A past assistant turn, written exactly as the model is asked to write calls."""
        call = message.get("function_call")
        thoughts = message.get("content") or ""
        if not call:
            return thoughts
        args = call_arguments(message)
        body: dict[str, Any] = {}
        if self.thoughts == "top":
            body["inner_thoughts"] = thoughts
        body[self.name_key] = call["name"]
        body[self.args_key] = {"inner_thoughts": thoughts, **args} if self.thoughts == "params" else args
        return self.call_start + json.dumps(body, ensure_ascii=False) + self.call_end

    def forced_prefix(self, first_message: bool) -> str:
        """Text that starts the call in the prompt when no constraint enforces the format."""
        if self.constrained:
            return ""
        if self.thoughts == "top":
            return '{"inner_thoughts": "'
        return '{"' + self.name_key + '": "'

    def plain_prompt(self, system: str, user: str) -> str:
        return self.system_template.format(text=system) + self.user_template.format(text=user) + self.generation_prompt

    # -- output ------------------------------------------------------------------------------------
    def output_schema(self, functions: Sequence[FunctionSchema]) -> dict[str, Any]:
        return function_call_schema(
            list(functions), name_key=self.name_key, args_key=self.args_key, thoughts=self.thoughts
        )

    def parse(self, raw_llm_output: str, functions: Sequence[FunctionSchema] | None = None) -> ParsedCall:
        return parse_function_call(
            raw_llm_output,
            list(functions) if functions is not None else None,
            end_marker=self.call_end or None,
            prefix=self.forced_prefix(first_message=False),
        )
