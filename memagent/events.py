"""What the agent reports while it works. The REPL, --json mode, scripts and tests all consume these.

One frozen dataclass per event type. Every event has `.type` (its wire name), `.text` and `.data` (the extra
keys of its JSON line, in wire order), and `to_json()` writes the line `--json` prints:
``{"type": ..., "text": ..., **data}``. Consumers that render events match on the class; `.data` is the wire view.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

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


class _Event:
    """What every event has. `text` is a field or a property of the subclass."""

    type: ClassVar[EventType]
    if TYPE_CHECKING:
        # Read-only here, so a subclass may make it a field or a property; declared for the checker only, as a
        # class-level property would intercept the dataclass fields' assignment.
        @property
        def text(self) -> str: ...

    @property
    def data(self) -> dict[str, Any]:
        """The keys the JSON line carries after type and text."""
        return {}

    def to_json(self) -> str:
        # Cleaned as a whole: model output (raw text, arguments) can carry lone surrogates no stream can encode.
        return clean_text(json.dumps({"type": self.type, "text": self.text, **self.data}, ensure_ascii=False))


@dataclass(frozen=True)
class UserMessage(_Event):
    type: ClassVar[EventType] = "user_message"
    text: str


@dataclass(frozen=True)
class InnerThoughts(_Event):
    """The model's thoughts before its call, and what the parser repaired to read the call."""

    type: ClassVar[EventType] = "inner_thoughts"
    text: str
    repairs: tuple[str, ...] = ()

    @property
    def data(self) -> dict[str, Any]:
        return {"repairs": list(self.repairs)}


@dataclass(frozen=True)
class FunctionCall(_Event):
    type: ClassVar[EventType] = "function_call"
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.name

    @property
    def data(self) -> dict[str, Any]:
        return {"arguments": self.arguments}


@dataclass(frozen=True)
class FunctionReturn(_Event):
    type: ClassVar[EventType] = "function_return"
    name: str
    status: Literal["OK", "Failed"]
    message: str | None = None

    @property
    def text(self) -> str:
        return self.name

    @property
    def data(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message}


@dataclass(frozen=True)
class AssistantMessage(_Event):
    """What send_message said, once its step is committed."""

    type: ClassVar[EventType] = "assistant_message"
    text: str


@dataclass(frozen=True)
class AssistantMessageDelta(_Event):
    """A piece of send_message's text as it is generated (not yet committed: the terminal shows it live)."""

    type: ClassVar[EventType] = "assistant_message_delta"
    text: str


@dataclass(frozen=True)
class Heartbeat(_Event):
    type: ClassVar[EventType] = "heartbeat"
    text: str


@dataclass(frozen=True)
class SystemAlert(_Event):
    """A system message to the agent; `summary` is set when the alert reports a summary of older messages."""

    type: ClassVar[EventType] = "system_alert"
    text: str
    summary: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        return {} if self.summary is None else {"summary": self.summary}


@dataclass(frozen=True)
class Retry(_Event):
    """A reply that could not be used; `raw` is the model's text, `attempt` counts from 1."""

    type: ClassVar[EventType] = "retry"
    text: str
    attempt: int
    raw: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "raw": self.raw}


@dataclass(frozen=True)
class Warning(_Event):  # the wire name; shadows the builtin in this module only (never raised)
    """Something the user should know; `raw` is the model's text when the warning is about it."""

    type: ClassVar[EventType] = "warning"
    text: str
    raw: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        return {} if self.raw is None else {"raw": self.raw}


@dataclass(frozen=True)
class Error(_Event):
    """An error shown to the user in one line."""

    type: ClassVar[EventType] = "error"
    text: str


@dataclass(frozen=True)
class ModelError(Error):
    """A step ended by the model or its server; `raw` is the model's last text, if any (always on the wire)."""

    raw: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        return {"raw": self.raw}


@dataclass(frozen=True)
class ContextOverflow(Error):
    """The prompt does not fit even after summarizing; `prompt_tokens` is its size, if known."""

    prompt_tokens: int | None = None

    @property
    def data(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens}


@dataclass(frozen=True)
class Info(_Event):
    type: ClassVar[EventType] = "info"
    text: str


@dataclass(frozen=True)
class SessionInfo(Info):
    """The first line of `--json` output: which agent the session opened, and whether it was new."""

    agent: str
    created: bool

    @property
    def data(self) -> dict[str, Any]:
        return {"agent": self.agent, "created": self.created}


Event: TypeAlias = (
    UserMessage
    | InnerThoughts
    | FunctionCall
    | FunctionReturn
    | AssistantMessage
    | AssistantMessageDelta
    | Heartbeat
    | SystemAlert
    | Retry
    | Warning
    | Error
    | Info
)
