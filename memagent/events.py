"""What the agent reports while it works. The REPL, --json mode, scripts and tests all consume these."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from memagent.text import clean_text

EventType = Literal[
    "user_message",
    "inner_thoughts",
    "function_call",
    "function_return",
    "assistant_message",
    "assistant_message_delta",
    "heartbeat",
    "system_alert",
    "retry",
    "warning",
    "error",
    "info",
]


@dataclass(frozen=True)
class Event:
    type: EventType
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        # Cleaned as a whole: model output (raw text, arguments) can carry lone surrogates no stream can encode.
        return clean_text(json.dumps({"type": self.type, "text": self.text, **self.data}, ensure_ascii=False))
