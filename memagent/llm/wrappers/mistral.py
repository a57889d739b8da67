"""Mistral v3 tokenizer models (Mistral-7B-Instruct-v0.3, Nemo): `[INST]` turns with native tool tokens.

Follows Mistral-7B-Instruct-v0.3's chat template: `[AVAILABLE_TOOLS] [...][/AVAILABLE_TOOLS]` right before the
last user turn, whose `[INST]` also carries the system text ("system\\n\\nuser"); calls are
`[TOOL_CALLS] [{"name": ..., "arguments": {...}, "id": ...}]</s>` and results
`[TOOL_RESULTS] {"content": ..., "call_id": ...}[/TOOL_RESULTS]`. The template rejects ids that aren't 9
alphanumerics, so past calls get `call00001`, `call00002`... and a result takes the id of the call before it.
Unlike the stock template, the system text is kept when the conversation ends on a tool result (the template
drops it then). No `<s>`: the backend adds BOS. Inner thoughts are the first argument; `[TOOL_CALLS] ` is
prefilled, so a grammar produces the `[...]` array only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from memagent.llm.wrappers.base import FunctionSchema, JSONCallWrapper, Message


class MistralWrapper(JSONCallWrapper):
    name = "mistral"
    description = "Mistral v0.3 [INST] turns, [AVAILABLE_TOOLS]/[TOOL_CALLS]/[TOOL_RESULTS]; inner thoughts in args"
    stop = ("</s>", "[INST]", "[TOOL_RESULTS]")
    name_key = "name"
    args_key = "arguments"
    call_start = "[TOOL_CALLS] "
    call_array = True
    generation_prompt = ""  # the answer follows `[/INST]` or `[/TOOL_RESULTS]` directly

    def chat_completion_to_prompt(
        self, messages: Sequence[Message], functions: Sequence[FunctionSchema], first_message: bool = False
    ) -> str:
        system = "\n\n".join(m.get("content") or "" for m in messages if m.get("role") == "system")
        rest = [m for m in messages if m.get("role") != "system"]
        users = [i for i, m in enumerate(rest) if m.get("role") == "user"]
        if not users:  # the tools and system text need a user turn to sit in
            rest, users = [*rest, {"role": "user", "content": ""}], [len(rest)]
        tools = [{"type": "function", "function": self.declared_function(f)} for f in functions]
        parts, calls = [], 0
        for i, message in enumerate(rest):
            if i == users[-1]:
                parts.append(f"[AVAILABLE_TOOLS] {json.dumps(tools, ensure_ascii=False)}[/AVAILABLE_TOOLS]")
            calls += 1 if message.get("function_call") else 0
            parts.append(self.render_turn(message, f"call{calls:05d}", system if i == users[-1] else ""))
        return "".join(parts) + self.generation_text(first_message)

    def render_turn(self, message: Message, call_id: str, system: str) -> str:
        role = message.get("role")
        if role == "user":
            text = self.turn(message, ()).text
            return f"[INST] {system}\n\n{text}[/INST]" if system else f"[INST] {text}[/INST]"
        if role == "assistant" and message.get("function_call"):
            body = {**self.call_body(message), "id": call_id}
            return self.call_start + json.dumps([body], ensure_ascii=False) + "</s>"
        if role == "assistant":
            return f" {(message.get('content') or '').strip()}</s>"
        if role in ("function", "tool"):
            return f'[TOOL_RESULTS] {{"content": {result_json(message)}, "call_id": "{call_id}"}}[/TOOL_RESULTS]'
        raise ValueError(f"unknown message role {role!r}")

    def shared_prefix(self, prompt: str) -> int:
        return 0  # the system text sits in the last user turn: no start is the same for every agent

    def plain_prompt(self, system: str, user: str) -> str:
        return f"[INST] {system}\n\n{user}[/INST]"


def result_json(message: Message) -> str:
    """A result as the template inserts it: raw when it is JSON (MemGPT's results are), else quoted."""
    content = message.get("content") or ""
    try:
        json.loads(content)
    except (json.JSONDecodeError, TypeError):
        return json.dumps(content, ensure_ascii=False)
    return content
