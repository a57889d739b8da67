"""SmolLM2-Instruct (135M / 360M / 1.7B): ChatML with SmolLM2's own tool prompt and array calls.

SmolLM2's GGUF template is plain ChatML with no tool branch, but the model was tuned on Argilla's APIGen data
with a system prompt that lists the tools as a JSON array inside `<tools>...</tools>` and asks for
`<tool_call>[{"name": ..., "arguments": {...}}]</tool_call>` (a JSON array, even for one call) and nothing
else. This wrapper keeps that shape, with inner thoughts as the first argument, and prefills `<tool_call>`.
Results go back in a user turn wrapped in `<tool_response>`, since the model only knows the ChatML roles
system, user and assistant.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from memagent.llm.wrappers.base import FunctionSchema, before_memory
from memagent.llm.wrappers.chatml import ChatMLWrapper


class SmolLM2Wrapper(ChatMLWrapper):
    name = "smollm2"
    description = "ChatML + SmolLM2's <tools> prompt and <tool_call>[...]</tool_call> array calls"
    function_template = "<|im_start|>user\n<tool_response>\n{text}\n</tool_response><|im_end|>\n"
    name_key = "name"
    args_key = "arguments"
    call_start = "<tool_call>"
    call_end = "</tool_call>"
    call_array = True
    instructions = (
        "You are an expert in composing functions. Based on the conversation, make exactly one function call.\n"
        "You have access to the following tools:\n<tools>{tools}</tools>\n\n"
        "The output MUST strictly adhere to the following format, and NO other text MUST be included. "
        "Please make sure the parameter type is correct.\n"
        '<tool_call>[{{"name": "func_name", "arguments": {{"argument1": "value1"}}}}]</tool_call>'
    )

    def system_text(self, system: str, functions: Sequence[FunctionSchema]) -> str:
        tools = json.dumps([self.declared_function(f) for f in functions], ensure_ascii=False)
        return before_memory(system, self.instructions.format(tools=tools), "\n\n")
