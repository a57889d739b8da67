"""ChatML with MemGPT's JSON call (the default): {"function": NAME, "params": {"inner_thoughts": ..., ...}}.

Fits any ChatML-trained model (SmolLM2, Qwen, Dolphin, OpenHermes). Function results go back in an
assistant turn prefixed "FUNCTION RETURN:", as MemGPT's chatml wrapper did.
"""

from __future__ import annotations

from memagent.llm.wrappers.base import JSONCallWrapper


class ChatMLWrapper(JSONCallWrapper):
    name = "chatml"
    description = "ChatML turns; MemGPT's JSON call with inner thoughts inside params (default)"
    stop = ("<|im_end|>", "<|im_start|>")
    system_template = "<|im_start|>system\n{text}<|im_end|>\n"
    user_template = "<|im_start|>user\n{text}<|im_end|>\n"
    assistant_template = "<|im_start|>assistant\n{text}<|im_end|>\n"
    function_template = "<|im_start|>assistant\nFUNCTION RETURN: {text}<|im_end|>\n"
    generation_prompt = "<|im_start|>assistant\n"


class ChatMLNoForceWrapper(ChatMLWrapper):
    """Inner thoughts come first, at the top level, before the model picks a function."""

    name = "chatml-noforce"
    description = "ChatML turns; inner thoughts first at the top level, then the call"
    thoughts = "top"
    instructions = (
        "You must always include inner thoughts, then select the most suitable function and parameters "
        "from the list of available functions below. Provide your response in JSON format."
    )
