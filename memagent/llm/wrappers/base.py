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

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from memagent.errors import LLMOutputError
from memagent.llm.constraint import ThoughtsPlacement, function_call_schema
from memagent.llm.parse import ParsedCall, check_reply_length, clean_call, extract_json_value, parse_function_call
from memagent.messages import RETRIEVED_MEMORY

Message = dict[str, Any]
FunctionSchema = dict[str, Any]

INNER_THOUGHTS_DESCRIPTION = "Deep inner monologue private to you only."

MEMORY_HEADING = "### Memory"
"""Where the memory block of MemGPT's system message begins (a line starting with it, as in MemGPT's "### Memory [last
modified: ...]" and memagent's "### Memory"): the part that differs between agents (core memory, statistics, the time
of the last edit). Wrappers put the function list before it, so the prompt's whole start (instructions and
functions) is the same for every agent and a backend can evaluate it once for all of them."""


def split_memory(system: str) -> tuple[str, str]:
    """The system message's text before its memory block, and the block ("" when it has none)."""
    at = system.find("\n" + MEMORY_HEADING)
    if at < 0:
        return system, ""
    return system[:at].rstrip("\n"), system[at:].lstrip("\n")


def before_memory(system: str, functions_text: str, separator: str) -> str:
    """``functions_text`` after the system message's instructions and before its memory block."""
    head, memory = split_memory(system)
    text = f"{head}{separator}{functions_text}"
    return f"{text}\n\n{memory}" if memory else text


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

    def shared_prefix(self, prompt: str) -> int:
        """How many leading characters of a prompt this wrapper rendered are the same for every agent (everything
        before the memory block: instructions and functions); 0 when the format has no such start."""
        return max(prompt.find("\n" + MEMORY_HEADING) + 1, 0)

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


def parse_named_call(name: str, args_text: str, functions: Sequence[FunctionSchema] | None, raw: str) -> ParsedCall:
    """A call whose function name sits outside the JSON (Functionary's recipient; also Mistral v11's
    `NAME[ARGS]{...}` and DeepSeek's `NAME<sep>{...}`): the arguments are read by the shared extractor and the
    rebuilt call goes through the shared parser, so repairs and validation match those of JSON calls."""
    try:
        args, repairs = extract_json_value(args_text) if args_text.strip() else ({}, [])
        call = json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
        parsed = parse_function_call(call, list(functions) if functions is not None else None)
    except LLMOutputError as err:
        raise LLMOutputError(str(err), raw) from err
    return clean_call(dataclasses.replace(parsed, repairs=tuple(dict.fromkeys([*repairs, *parsed.repairs]))))


RETRIEVED_HEADING = "[Retrieved memory: found automatically for this message; may be relevant]"
"""What marks auto recall's lines in a user turn of a wrapper that sends only the text of MemGPT's envelope (in the
envelope itself they are its ``retrieved_memory`` list)."""


def user_text(content: str) -> str:
    """The message text inside MemGPT's user envelope, after the memory auto recall attached to it (under
    ``RETRIEVED_HEADING``), or the content itself if it isn't one."""
    try:
        envelope = json.loads(content)
    except (json.JSONDecodeError, TypeError):
        return content
    if isinstance(envelope, dict) and envelope.get("type") == "user_message":
        text = str(envelope.get("message", ""))
        retrieved = envelope.get(RETRIEVED_MEMORY)
        if isinstance(retrieved, list) and retrieved:
            lines = "\n".join(f"- {line}" for line in retrieved)
            return f"{RETRIEVED_HEADING}\n{lines}\n\n{text}"
        return text
    return content


class Turn(NamedTuple):
    """One rendered turn before the role markers go around it. `name` is the function of a result turn."""

    role: str  # "system", "user", "assistant" or "function"
    text: str
    name: str = ""


class JSONCallWrapper(LLMChatCompletionWrapper):
    """Prompted JSON calls (MemGPT's style): every assistant turn is one JSON function call.

    Subclasses set the turn markers and, if they differ, the call keys; everything else is shared.
    Rendering is two steps so formats can differ only where they must: `turn()` turns each message into
    a Turn (text only), `arrange()` may fold or merge turns (e.g. Gemma has no system role), and
    `format_turn()` puts the role markers around each one.
    """

    # Turn markers. `{text}` (and `{name}`, a result's function) is replaced; none of these may add a BOS
    # token (the backend adds it).
    system_template: ClassVar[str] = "{text}\n"
    user_template: ClassVar[str] = "USER: {text}\n"
    assistant_template: ClassVar[str] = "ASSISTANT: {text}\n"
    function_template: ClassVar[str] = "FUNCTION RETURN: {text}\n"
    generation_prompt: ClassVar[str] = "ASSISTANT: "
    # The call format.
    name_key: ClassVar[str] = "function"
    args_key: ClassVar[str] = "params"
    thoughts: ClassVar[ThoughtsPlacement | None] = "params"  # "params", "top" or None
    call_start: ClassVar[str] = ""  # prefilled before the JSON (e.g. "<tool_call>\n")
    call_end: ClassVar[str] = ""  # after the JSON in past turns; left for the parser in new output
    call_array: ClassVar[bool] = False  # the JSON is a one-call list, `[{...}]` (SmolLM2, Mistral)
    simplify_user_messages: ClassVar[bool] = False  # send only the text of MemGPT's user envelope
    instructions: ClassVar[str] = (
        "Please select the most suitable function and parameters from the list of available functions "
        "below, based on the ongoing conversation. Provide your response in JSON format."
    )

    # -- prompt ------------------------------------------------------------------------------------
    def chat_completion_to_prompt(
        self, messages: Sequence[Message], functions: Sequence[FunctionSchema], first_message: bool = False
    ) -> str:
        turns = self.arrange([self.turn(message, functions) for message in messages])
        return "".join(self.format_turn(turn) for turn in turns) + self.generation_text(first_message)

    def turn(self, message: Message, functions: Sequence[FunctionSchema]) -> Turn:
        role, content = message.get("role"), message.get("content") or ""
        if role == "system":
            return Turn("system", self.system_text(content, functions))
        if role == "user":
            return Turn("user", user_text(content) if self.simplify_user_messages else content)
        if role == "assistant":
            return Turn("assistant", self.render_call(message))
        if role in ("function", "tool"):
            return Turn("function", content, str(message.get("name") or ""))
        raise ValueError(f"unknown message role {role!r}")

    def arrange(self, turns: list[Turn]) -> list[Turn]:
        """Hook for formats with role rules (no system role, strict alternation). Default: unchanged."""
        return turns

    def format_turn(self, turn: Turn) -> str:
        template = {
            "system": self.system_template,
            "user": self.user_template,
            "assistant": self.assistant_template,
            "function": self.function_template,
        }[turn.role]
        return template.format(text=turn.text, name=turn.name)

    def generation_text(self, first_message: bool) -> str:
        """What ends the prompt: the assistant header, the call's opening marker and the forced prefix."""
        return self.generation_prompt + self.call_start + self.forced_prefix(first_message)

    def system_text(self, system: str, functions: Sequence[FunctionSchema]) -> str:
        listing = f"{self.instructions}\nAvailable functions:\n{self.describe_functions(functions)}"
        return before_memory(system, listing, "\n")

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

    def declared_function(self, schema: FunctionSchema) -> FunctionSchema:
        """A function schema as native tool formats declare it: with `inner_thoughts` as the first, required
        parameter when thoughts go in the arguments, so the declaration matches the output schema."""
        parameters = dict(schema.get("parameters") or {"type": "object", "properties": {}})
        if self.thoughts == "params":
            thought = {"type": "string", "description": INNER_THOUGHTS_DESCRIPTION}
            parameters["properties"] = {"inner_thoughts": thought, **(parameters.get("properties") or {})}
            parameters["required"] = ["inner_thoughts", *(parameters.get("required") or ())]
        return {"name": schema["name"], "description": schema.get("description", ""), "parameters": parameters}

    def call_body(self, message: Message) -> dict[str, Any]:
        """The JSON object of a past call, keyed exactly as the model is asked to write calls."""
        thoughts = message.get("content") or ""
        body: dict[str, Any] = {}
        if self.thoughts == "top":
            body["inner_thoughts"] = thoughts
        body[self.name_key] = (message.get("function_call") or {}).get("name", "")
        args = call_arguments(message)
        body[self.args_key] = {"inner_thoughts": thoughts, **args} if self.thoughts == "params" else args
        return body

    def render_call(self, message: Message) -> str:
        """A past assistant turn, written exactly as the model is asked to write calls."""
        if not message.get("function_call"):
            return message.get("content") or ""
        body = self.call_body(message)
        text = json.dumps([body] if self.call_array else body, ensure_ascii=False)
        return self.call_start + text + self.call_end

    def forced_prefix(self, first_message: bool) -> str:
        """Text that starts the call in the prompt when no constraint enforces the format."""
        if self.constrained:
            return ""
        opener = "[" if self.call_array else ""
        if self.thoughts == "top":
            return opener + '{"inner_thoughts": "'
        return opener + '{"' + self.name_key + '": "'

    def plain_prompt(self, system: str, user: str) -> str:
        turns = self.arrange([Turn("system", system), Turn("user", user)])
        return "".join(self.format_turn(turn) for turn in turns) + self.generation_prompt

    # -- output ------------------------------------------------------------------------------------
    def output_schema(self, functions: Sequence[FunctionSchema]) -> dict[str, Any]:
        """The JSON part only: the opening marker is prefilled, the closing one is a stop or parsed."""
        schema = function_call_schema(
            list(functions), name_key=self.name_key, args_key=self.args_key, thoughts=self.thoughts
        )
        return {"type": "array", "items": schema, "minItems": 1, "maxItems": 1} if self.call_array else schema

    def parse(self, raw_llm_output: str, functions: Sequence[FunctionSchema] | None = None) -> ParsedCall:
        # The prompt prefills `call_start`; a model that writes it again is fine too (and so is a past
        # turn's text, which makes render -> parse a round trip).
        check_reply_length(raw_llm_output)
        text = raw_llm_output.lstrip()
        opener = self.call_start.strip()
        text = text[len(opener) :] if opener and text.startswith(opener) else raw_llm_output
        try:
            call = parse_function_call(
                text,
                list(functions) if functions is not None else None,
                end_marker=self.call_end.strip() or None,
                prefix=self.forced_prefix(first_message=False),
            )
        except LLMOutputError as err:
            if err.raw == raw_llm_output:
                raise
            raise LLMOutputError(str(err), raw_llm_output) from err
        return clean_call(call)
