"""Pick a wrapper from a GGUF's `tokenizer.chat_template` by the markers the template writes.

The same idea as llama.cpp's and text-generation-webui's template sniffing: a family's turn markers are
distinctive enough to tell the formats apart without rendering anything. Returns None when no marker is
recognised (or the template is Llama 2's `[INST] <<SYS>>`, which shares Mistral's `[INST]` but not its tool
tokens), so the caller keeps its default.
"""

from __future__ import annotations


def wrapper_for_chat_template(template: str | None) -> str | None:
    if not template:
        return None
    if "<|from|>" in template and "<|recipient|>" in template:
        return "functionary"
    if "<|im_start|>" in template:
        if "<tool_call>" not in template and "tools" not in template:
            return "chatml"  # e.g. SmolLM2's GGUF: ChatML without a tool branch
        return "qwen2.5" if "Qwen" in template else "hermes"
    if "<|start_header_id|>" in template:
        return "llama3"
    if "<start_of_turn>" in template:
        return "gemma"
    if "[INST]" in template:
        return None if "<<SYS>>" in template else "mistral"
    if "<|user|>" in template and ("</s>" in template or "eos_token" in template) and "<|end|>" not in template:
        return "zephyr-7B"
    return None
