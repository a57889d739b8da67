"""Zephyr (HuggingFaceH4/zephyr-7b-alpha and -beta): `<|system|>`, `<|user|>`, `<|assistant|>` turns ending `</s>`.

Follows the model's chat template: `<|role|>\\n{content}</s>\\n` per turn and `<|assistant|>\\n` as the
generation prompt. Zephyr has no tool format, so calls are MemGPT's prompted JSON with inner thoughts in
params, and function results go back in an assistant turn prefixed `FUNCTION RETURN:` (MemGPT's choice).
The markers are plain text in Zephyr's vocabulary except `</s>`, which llama.cpp turns into the EOS token.
"""

from __future__ import annotations

from memagent.llm.wrappers.base import JSONCallWrapper


class ZephyrWrapper(JSONCallWrapper):
    name = "zephyr-7B"
    description = "Zephyr <|system|>/<|user|>/<|assistant|> turns ending </s>; MemGPT's JSON call"
    stop = ("</s>", "<|user|>", "<|system|>", "<|assistant|>")
    system_template = "<|system|>\n{text}</s>\n"
    user_template = "<|user|>\n{text}</s>\n"
    assistant_template = "<|assistant|>\n{text}</s>\n"
    function_template = "<|assistant|>\nFUNCTION RETURN: {text}</s>\n"
    generation_prompt = "<|assistant|>\n"
