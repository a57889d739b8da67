"""Functionary v2 (meetkai/functionary-small-v2.4 and other v2.x): `<|from|>`/`<|recipient|>`/`<|content|>` blocks.

Follows the v2 chat template (seed 002): blocks are `<|from|>ROLE\\n<|recipient|>all\\n<|content|>TEXT\\n`,
assistant turns end `<|stop|>\\n`, a call is addressed to the function (`<|recipient|>NAME\\n<|content|>{args}`)
and its result comes back from it (`<|from|>NAME`). Functions are declared first, as a TypeScript namespace in
a system block; inner thoughts are the first argument. The name sits outside the JSON, so a JSON grammar can't
cover a native call: under a constraint the prompt opens the assistant's `all` channel instead and the grammar
writes `{"name": ..., "arguments": ...}` there. Without one, the prompt ends at `<|recipient|>`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from memagent.errors import LLMOutputError
from memagent.llm.parse import ParsedCall, check_reply_length, clean_call, parse_function_call
from memagent.llm.wrappers.base import FunctionSchema, JSONCallWrapper, Message, Turn, parse_named_call

_BLOCK = "<|from|>{role}\n<|recipient|>{recipient}\n<|content|>{text}"
_CALL = re.compile(r"<\|recipient\|>\s*([^\s<]+)\s*<\|content\|>")
_TS_TYPES = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean", "object": "object"}


class FunctionaryWrapper(JSONCallWrapper):
    name = "functionary"
    description = "Functionary v2 <|from|>/<|recipient|>/<|content|> blocks; TypeScript function declarations"
    stop = ("<|stop|>",)
    name_key = "name"
    args_key = "arguments"

    def chat_completion_to_prompt(
        self, messages: Sequence[Message], functions: Sequence[FunctionSchema], first_message: bool = False
    ) -> str:
        declarations = self.format_turn(Turn("system", self.describe_functions(functions)))
        return declarations + super().chat_completion_to_prompt(messages, functions, first_message)

    def format_turn(self, turn: Turn) -> str:
        if turn.role == "assistant":
            return turn.text + "<|stop|>\n"
        role = turn.name if turn.role == "function" else turn.role
        return _BLOCK.format(role=role, recipient="all", text=turn.text) + "\n"

    def system_text(self, system: str, functions: Sequence[FunctionSchema]) -> str:
        return system  # the functions have their own block, first

    def describe_functions(self, functions: Sequence[FunctionSchema]) -> str:
        """The TypeScript namespace Functionary was trained on: a comment per function and per parameter."""
        lines = ["// Supported function definitions that should be called when necessary.", "namespace functions {"]
        for function in map(self.declared_function, functions):
            params = function["parameters"]
            lines += ["", f"// {function['description']}", f"type {function['name']} = (_: {{"]
            for key, prop in params["properties"].items():
                if prop.get("description"):
                    lines.append(f"// {prop['description']}")
                optional = "" if key in params.get("required", ()) else "?"
                lines.append(f"{key}{optional}: {ts_type(prop)},")
            lines.append("}) => any;")
        return "\n".join([*lines, "", "} // namespace functions"])

    def render_call(self, message: Message) -> str:
        if not message.get("function_call"):
            return _BLOCK.format(role="assistant", recipient="all", text=message.get("content") or "")
        body = self.call_body(message)
        args = json.dumps(body[self.args_key], ensure_ascii=False)
        return _BLOCK.format(role="assistant", recipient=body[self.name_key], text=args)

    def forced_prefix(self, first_message: bool) -> str:
        return ""  # the model writes the recipient (the function name) itself

    def generation_text(self, first_message: bool) -> str:
        return "<|from|>assistant\n<|recipient|>" + ("all\n<|content|>" if self.constrained else "")

    def plain_prompt(self, system: str, user: str) -> str:
        turns = self.format_turn(Turn("system", system)) + self.format_turn(Turn("user", user))
        return turns + "<|from|>assistant\n<|recipient|>all\n<|content|>"

    def parse(self, raw_llm_output: str, functions: Sequence[FunctionSchema] | None = None) -> ParsedCall:
        """The first block addressed to a function gives the name (recipient) and the arguments (content);
        with none (the `all` channel under a constraint) the content is parsed as a JSON call."""
        check_reply_length(raw_llm_output)
        full = raw_llm_output.lstrip().startswith(("<|from|>", "<|recipient|>"))
        text = raw_llm_output if full else "<|recipient|>" + raw_llm_output  # the prompt ended at the recipient
        call = next((match for match in _CALL.finditer(text) if match.group(1) != "all"), None)
        if call is None:
            content = raw_llm_output.split("<|content|>")[-1]
            try:
                return clean_call(parse_function_call(content, functions, end_marker="<|stop|>"))
            except LLMOutputError as err:  # the error carries the reply as it came, as every wrapper's does
                raise LLMOutputError(str(err), raw_llm_output) from err
        content = text[call.end() :].split("<|stop|>")[0].split("<|from|>")[0]
        return parse_named_call(call.group(1), content, functions, raw_llm_output)


def ts_type(schema: dict[str, Any]) -> str:
    """A parameter's TypeScript type, as Functionary's schema converter writes it."""
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    if schema.get("type") == "array":
        return f"{ts_type(schema.get('items') or {})}[]"
    return _TS_TYPES.get(schema.get("type", ""), "any")
