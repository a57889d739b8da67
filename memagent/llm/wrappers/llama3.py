"""Llama 3 / 3.1 / 3.2 / 3.3 Instruct: `<|start_header_id|>ROLE<|end_header_id|>\\n\\n...<|eot_id|>` turns.

Every turn, including function results and the generation prompt, carries the full header: MemGPT's llama3
wrapper dropped `<|end_header_id|>` on those two, which the model never saw in training. The prompt holds no
`<|begin_of_text|>`: llama.cpp and llama-server add BOS themselves, and a second one hurts the model.
Calls follow Meta's Llama 3.1 JSON tool format, `{"name": NAME, "parameters": {...}}`, declared in the system
turn as Meta's template does with `tools_in_user_message=False`; inner thoughts are the first parameter.
Results go back in `ipython` turns, the role Llama 3.1 was trained on for tool output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from memagent.llm.wrappers.base import FunctionSchema, JSONCallWrapper


class Llama3Wrapper(JSONCallWrapper):
    name = "llama3"
    description = "Llama 3.x header turns; Meta's {name, parameters} JSON call with inner thoughts"
    stop = ("<|eot_id|>", "<|start_header_id|>")
    system_template = "<|start_header_id|>system<|end_header_id|>\n\n{text}<|eot_id|>"
    user_template = "<|start_header_id|>user<|end_header_id|>\n\n{text}<|eot_id|>"
    assistant_template = "<|start_header_id|>assistant<|end_header_id|>\n\n{text}<|eot_id|>"
    function_template = "<|start_header_id|>ipython<|end_header_id|>\n\n{text}<|eot_id|>"
    generation_prompt = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    name_key = "name"
    args_key = "parameters"
    instructions = (
        "You have access to the following functions. To call a function, respond with JSON for a function "
        'call in the format {"name": function name, "parameters": dictionary of argument name and its value}. '
        "Always call exactly one function. Do not use variables."
    )

    def system_text(self, system: str, functions: Sequence[FunctionSchema]) -> str:
        declared = "\n\n".join(json.dumps(self.declared_function(f), indent=4) for f in functions)
        return f"{self.instructions}\n\n{declared}\n\n{system}"
