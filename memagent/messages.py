"""The messages the agent keeps: OpenAI-style dicts in MemGPT's envelopes (memgpt/system.py's shapes)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

HIDDEN_PREFIX = "[This is an automated system message hidden from the user] "
HEARTBEAT_REQUESTED = HIDDEN_PREFIX + "Function called using request_heartbeat=true, returning control"
HEARTBEAT_FAILED = HIDDEN_PREFIX + "Function call failed, returning control"
MEMORY_PRESSURE = (
    HIDDEN_PREFIX + "The conversation history will soon reach its maximum length and be trimmed. "
    "Do NOT tell the user about this system alert, they should not know that the history is reaching max "
    "length. If there is any important new information or general memories about you or the user that "
    "you would like to save, you should save that information immediately by calling function "
    "core_memory_append, core_memory_replace, or archival_memory_insert."
)
BOOT_THOUGHTS = "Bootup sequence complete. Persona activated. Testing messaging functionality."
BOOT_MESSAGE = "More human than human is our motto."

Message = dict[str, Any]


def format_time(moment: datetime) -> str:
    """MemGPT's timestamp format, in local time: 2023-11-01 09:53:02 PM PDT-0700."""
    return moment.astimezone().strftime("%Y-%m-%d %I:%M:%S %p %Z%z")


def now_text(moment: datetime | None = None) -> str:
    return format_time(moment or datetime.now().astimezone())


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)


def user_message(text: str, moment: datetime | None = None) -> Message:
    return {"role": "user", "content": _dumps({"type": "user_message", "message": text, "time": now_text(moment)})}


def heartbeat_message(reason: str, moment: datetime | None = None) -> Message:
    return {"role": "user", "content": _dumps({"type": "heartbeat", "reason": reason, "time": now_text(moment)})}


def system_alert(text: str, moment: datetime | None = None) -> Message:
    return {"role": "user", "content": _dumps({"type": "system_alert", "message": text, "time": now_text(moment)})}


def login_message(moment: datetime | None = None) -> Message:
    return {
        "role": "user",
        "content": _dumps({"type": "login", "last_login": "Never (first login)", "time": now_text(moment)}),
    }


def assistant_call(thoughts: str | None, name: str, arguments: dict[str, Any]) -> Message:
    return {
        "role": "assistant",
        "content": thoughts or "",
        "function_call": {"name": name, "arguments": _dumps(arguments)},
    }


def function_result(name: str, ok: bool, message: str | None, moment: datetime | None = None) -> Message:
    body = {
        "status": "OK" if ok else "Failed",
        "message": "None" if message is None else message,
        "time": now_text(moment),
    }
    return {"role": "function", "name": name, "content": _dumps(body)}


def boot_messages() -> list[Message]:
    """MemGPT's first turn: a worked example of the call format, before the user's first message."""
    return [
        assistant_call(BOOT_THOUGHTS, "send_message", {"message": BOOT_MESSAGE}),
        function_result("send_message", True, None),
        login_message(),
    ]


def searchable_text(message: Message) -> str:
    """What recall search indexes for a message: the words, not the JSON around them."""
    content = message.get("content") or ""
    if message["role"] == "user":
        try:
            envelope = json.loads(content)
        except json.JSONDecodeError:
            return content
        if isinstance(envelope, dict):
            return str(envelope.get("message") or envelope.get("reason") or "")
        return content
    if message["role"] == "assistant":
        call = message.get("function_call") or {}
        args = call.get("arguments") or "{}"
        args = json.loads(args) if isinstance(args, str) else args
        said = args.get("message", "") if call.get("name") == "send_message" else ""
        return " ".join(part for part in (content, said) if part)
    return content


def envelope_type(message: Message) -> str | None:
    """'user_message', 'heartbeat', 'system_alert', 'login' for user-role envelopes."""
    if message.get("role") != "user":
        return None
    try:
        envelope = json.loads(message.get("content") or "")
    except json.JSONDecodeError:
        return "user_message"
    return envelope.get("type") if isinstance(envelope, dict) else "user_message"
