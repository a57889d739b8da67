"""Hermes 2 Pro / Hermes 3 and Qwen 2.5: ChatML with `<tools>` declarations and `<tool_call>` blocks.

Tools are declared inside `<tools></tools>`, one `{"type": "function", "function": {...}}` JSON per line, and
the model answers `<tool_call>\\n{"name": NAME, "arguments": {...}}\\n</tool_call>`. The `<tool_call>\\n`
opener is prefilled in the prompt, so a grammar only has to produce the JSON; `</tool_call>` is left to the
parser (a stop string must not be able to occur inside the JSON).

Inner thoughts go in `arguments.inner_thoughts`, declared as each function's first required parameter: the
call keeps the exact `{"name", "arguments"}` shape these models were trained on, and the declared tools, the
output schema and past calls all agree. Hermes' tool-use template declares the tools in a system turn of its
own (with the pydantic FunctionCall schema) and returns results in `tool` turns; Qwen 2.5's appends a
`# Tools` section to the system turn and returns results inside a `user` turn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from memagent.llm.wrappers.base import FunctionSchema, Message, Turn, before_memory
from memagent.llm.wrappers.chatml import ChatMLWrapper

_FUNCTION_CALL_SCHEMA = (
    '{"properties": {"name": {"title": "Name", "type": "string"}, "arguments": {"title": "Arguments", '
    '"type": "object"}}, "required": ["name", "arguments"], "title": "FunctionCall", "type": "object"}'
)


class ToolCallChatML(ChatMLWrapper):
    """What the two share: ChatML, the `<tool_call>` call and the `<tools>` lines. Not registered (no name)."""

    name = ""
    name_key = "name"
    args_key = "arguments"
    call_start = "<tool_call>\n"
    call_end = "\n</tool_call>"

    def tool_lines(self, functions: Sequence[FunctionSchema]) -> str:
        tools = [{"type": "function", "function": self.declared_function(f)} for f in functions]
        return "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)


class HermesWrapper(ToolCallChatML):
    name = "hermes"
    description = "ChatML + <tools>/<tool_call> as Hermes 2 Pro / Hermes 3 write it; inner thoughts in arguments"
    function_template = "<|im_start|>tool\n<tool_response>\n{text}\n</tool_response>\n<|im_end|>\n"

    def chat_completion_to_prompt(
        self, messages: Sequence[Message], functions: Sequence[FunctionSchema], first_message: bool = False
    ) -> str:
        tools = self.format_turn(Turn("system", self.tools_prompt(functions)))
        return tools + super().chat_completion_to_prompt(messages, functions, first_message)

    def system_text(self, system: str, functions: Sequence[FunctionSchema]) -> str:
        return system  # the tools have their own system turn, first

    def tools_prompt(self, functions: Sequence[FunctionSchema]) -> str:
        return (
            "You are a function calling AI model. You are provided with function signatures within "
            "<tools></tools> XML tags. You may call one or more functions to assist with the user query. "
            "Don't make assumptions about what values to plug into functions. Here are the available tools:\n"
            f"<tools>{self.tool_lines(functions)}\n</tools>\n"
            f"Use the following pydantic model json schema for each tool call you will make: {_FUNCTION_CALL_SCHEMA}\n"
            "For each function call return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags as follows:\n"
            '<tool_call>\n{"name": <function-name>, "arguments": <args-dict>}\n</tool_call>'
        )


class QwenWrapper(ToolCallChatML):
    name = "qwen2.5"
    description = "ChatML + <tools>/<tool_call> as Qwen 2.5's template writes it; inner thoughts in arguments"
    function_template = "<|im_start|>user\n<tool_response>\n{text}\n</tool_response><|im_end|>\n"

    def system_text(self, system: str, functions: Sequence[FunctionSchema]) -> str:
        return before_memory(
            system,
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            f"You are provided with function signatures within <tools></tools> XML tags:\n"
            f"<tools>{self.tool_lines(functions)}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n"
            '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>',
            "\n\n",
        )
