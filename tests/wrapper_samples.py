"""A fixed MemGPT conversation and function set for the wrapper tests (system, user, call, result, user)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from memagent.messages import assistant_call, boot_messages, function_result, user_message

MOMENT = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)

FUNCTIONS: list[dict[str, Any]] = [
    {
        "name": "send_message",
        "description": "Sends a message to the human user.",
        "parameters": {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "Message contents."}},
            "required": ["message"],
        },
    },
    {
        "name": "core_memory_append",
        "description": "Append to the contents of core memory.",
        "parameters": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": ["persona", "human"], "description": "Section to edit."},
                "content": {"type": "string", "description": "Content to write to the memory."},
                "request_heartbeat": {"type": "boolean", "description": "Request an immediate heartbeat."},
            },
            "required": ["name", "content", "request_heartbeat"],
        },
    },
]

# "###" and "\n#" inside the system text: stop strings like MemGPT's "\n#" would be wrong for it.
SYSTEM = "You are MemGPT, a memory agent.\n### Core memory\n# Persona: curious and kind."
THOUGHTS = "He told me his name and what he likes; save it."
APPEND_ARGS: dict[str, Any] = {"name": "human", "content": "Name: Chad. Likes tea.", "request_heartbeat": True}
CALL = assistant_call(THOUGHTS, "core_memory_append", APPEND_ARGS)
RESULT = function_result("core_memory_append", True, None, MOMENT)

SAMPLE: list[dict[str, Any]] = [
    {"role": "system", "content": SYSTEM},
    user_message("Hi, I'm Chad. I love tea.", MOMENT),
    CALL,
    RESULT,
    user_message("What's my name?", MOMENT),
]

# A call whose strings hold text that looks like turn markers and MemGPT's old stop strings.
TRICKY_CALL = assistant_call(
    "Plan:\n# step one\n  }\n}\n",
    "send_message",
    {"message": "Sure!\n### USER: not a turn\nASSISTANT: nor this\nFUNCTION RETURN: x\n  }\n}\n"},
)

# MemGPT's first context: the boot example call and its result come before any user turn.
BOOT: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, *boot_messages()]
