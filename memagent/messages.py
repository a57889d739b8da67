"""The messages an agent keeps, typed: one frozen dataclass per kind.

They are stored, and handed to wrappers and chat APIs, as OpenAI-style dicts in MemGPT's envelopes (memgpt/system.py's
shapes): a user-role message's `content` is a JSON envelope `{"type", "message"|"reason"|"last_login", "time"}`, an
assistant call's `arguments` a JSON string. `to_dict()` writes exactly those dicts and `message_from_dict()` reads them
back; this is the one module that decodes a message's JSON. A stored dict that isn't exactly one of these shapes
(written by another version, or by hand) becomes a `RawMessage` and is given back unchanged.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar, TypeAlias

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
FIRST_LOGIN = "Never (first login)"
RETRIEVED_MEMORY = "retrieved_memory"
"""The user envelope's key for the lines auto recall attached (memory/auto_recall.py)."""

Message = dict[str, Any]  # a message as stored and as wrappers take it


def format_time(moment: datetime) -> str:
    """MemGPT's timestamp format, in local time: 2023-11-01 09:53:02 PM PDT-0700."""
    return moment.astimezone().strftime("%Y-%m-%d %I:%M:%S %p %Z%z")


def now_text(moment: datetime | None = None) -> str:
    return format_time(moment or datetime.now().astimezone())


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _envelope(payload: Message, kind: str) -> dict[str, Any]:
    """The decoded envelope of a user-role dict of this `kind`; ValueError if it is something else."""
    if payload.get("role") != "user" or not isinstance(payload.get("content"), str):
        raise ValueError("not a user envelope")
    envelope = json.loads(payload["content"])
    if not isinstance(envelope, dict) or envelope.get("type") != kind:
        raise ValueError(f"not a {kind} envelope")
    return envelope


@dataclass(frozen=True)
class UserMessage:
    """What the user typed, and the memory auto recall found for it (``retrieved_memory``: lines the agent sees in
    the envelope before the message; never what search finds the message by)."""

    text: str
    time: str = field(default_factory=now_text)
    retrieved_memory: tuple[str, ...] = ()
    role: ClassVar[str] = "user"
    kind: ClassVar[str] = "user_message"

    @property
    def searchable_text(self) -> str:
        return self.text

    def to_dict(self) -> Message:
        envelope: dict[str, Any] = {"type": self.kind}
        if self.retrieved_memory:  # only when there is some: a plain message keeps MemGPT's envelope
            envelope[RETRIEVED_MEMORY] = list(self.retrieved_memory)
        envelope |= {"message": self.text, "time": self.time}
        return {"role": "user", "content": _dumps(envelope)}

    @classmethod
    def from_dict(cls, payload: Message) -> UserMessage:
        envelope = _envelope(payload, cls.kind)
        retrieved = envelope.get(RETRIEVED_MEMORY, [])
        if not isinstance(retrieved, list):
            raise TypeError(f"expected a list of lines, got {type(retrieved).__name__}")
        return cls(_str(envelope["message"]), _str(envelope["time"]), tuple(_str(line) for line in retrieved))


@dataclass(frozen=True)
class HeartbeatMessage:
    """The system's nudge to continue without the user: a requested or failed call's heartbeat, or a timer."""

    reason: str
    time: str = field(default_factory=now_text)
    role: ClassVar[str] = "user"
    kind: ClassVar[str] = "heartbeat"

    @property
    def searchable_text(self) -> str:
        return self.reason

    def to_dict(self) -> Message:
        return {"role": "user", "content": _dumps({"type": self.kind, "reason": self.reason, "time": self.time})}

    @classmethod
    def from_dict(cls, payload: Message) -> HeartbeatMessage:
        envelope = _envelope(payload, cls.kind)
        return cls(_str(envelope["reason"]), _str(envelope["time"]))


@dataclass(frozen=True)
class SystemAlertMessage:
    """A system alert: memory pressure, a summary of hidden messages, a correction of unusable output."""

    text: str
    time: str = field(default_factory=now_text)
    role: ClassVar[str] = "user"
    kind: ClassVar[str] = "system_alert"

    @property
    def searchable_text(self) -> str:
        return self.text

    def to_dict(self) -> Message:
        return {"role": "user", "content": _dumps({"type": self.kind, "message": self.text, "time": self.time})}

    @classmethod
    def from_dict(cls, payload: Message) -> SystemAlertMessage:
        envelope = _envelope(payload, cls.kind)
        return cls(_str(envelope["message"]), _str(envelope["time"]))


@dataclass(frozen=True)
class LoginMessage:
    """The login notice of MemGPT's first turn."""

    last_login: str = FIRST_LOGIN
    time: str = field(default_factory=now_text)
    role: ClassVar[str] = "user"
    kind: ClassVar[str] = "login"

    @property
    def searchable_text(self) -> str:
        return ""

    def to_dict(self) -> Message:
        envelope = {"type": self.kind, "last_login": self.last_login, "time": self.time}
        return {"role": "user", "content": _dumps(envelope)}

    @classmethod
    def from_dict(cls, payload: Message) -> LoginMessage:
        envelope = _envelope(payload, cls.kind)
        return cls(_str(envelope["last_login"]), _str(envelope["time"]))


@dataclass(frozen=True)
class AssistantCall:
    """The agent's inner thoughts and the one function it called (never changed in place: edits make a copy)."""

    thoughts: str
    name: str
    arguments: dict[str, Any]
    role: ClassVar[str] = "assistant"
    kind: ClassVar[str] = "assistant"

    @property
    def said(self) -> str:
        """What send_message told the user ("" for other functions)."""
        message = self.arguments.get("message", "") if self.name == "send_message" else ""
        return message if isinstance(message, str) else str(message)

    @property
    def searchable_text(self) -> str:
        return " ".join(part for part in (self.thoughts, self.said) if part)

    def with_thoughts(self, thoughts: str) -> AssistantCall:
        return replace(self, thoughts=thoughts)

    def with_said(self, text: str) -> AssistantCall:
        return replace(self, arguments={**self.arguments, "message": text})

    def to_dict(self) -> Message:
        return {
            "role": "assistant",
            "content": self.thoughts,
            "function_call": {"name": self.name, "arguments": _dumps(self.arguments)},
        }

    @classmethod
    def from_dict(cls, payload: Message) -> AssistantCall:
        call = payload["function_call"]
        arguments = json.loads(call["arguments"])
        if payload.get("role") != "assistant" or not isinstance(arguments, dict):
            raise ValueError("not an assistant call")
        return cls(_str(payload["content"]), _str(call["name"]), arguments)


@dataclass(frozen=True)
class FunctionResult:
    """What a called function returned (`message` None when it returned nothing), or why it failed."""

    name: str
    ok: bool
    message: str | None
    time: str = field(default_factory=now_text)
    role: ClassVar[str] = "function"
    kind: ClassVar[str] = "function"

    @property
    def searchable_text(self) -> str:
        return self.content  # what recall memory has always indexed for a result

    @property
    def content(self) -> str:
        message = "None" if self.message is None else self.message
        return _dumps({"status": "OK" if self.ok else "Failed", "message": message, "time": self.time})

    def to_dict(self) -> Message:
        return {"role": "function", "name": self.name, "content": self.content}

    @classmethod
    def from_dict(cls, payload: Message) -> FunctionResult:
        body = json.loads(payload["content"])
        if payload.get("role") != "function" or not isinstance(body, dict) or body["status"] not in ("OK", "Failed"):
            raise ValueError("not a function result")
        message = None if body["message"] == "None" else _str(body["message"])
        return cls(_str(payload["name"]), body["status"] == "OK", message, _str(body["time"]))


@dataclass(frozen=True)
class SystemMessage:
    """The system message at the top of the context (rendered from the template and core memory; never stored)."""

    text: str
    role: ClassVar[str] = "system"
    kind: ClassVar[str] = "system"

    @property
    def searchable_text(self) -> str:
        return self.text

    def to_dict(self) -> Message:
        return {"role": "system", "content": self.text}

    @classmethod
    def from_dict(cls, payload: Message) -> SystemMessage:
        if payload.get("role") != "system":
            raise ValueError("not a system message")
        return cls(_str(payload["content"]))


@dataclass(frozen=True)
class RawMessage:
    """A stored dict of no known shape, kept as it is (its words are found the way MemGPT's were)."""

    payload: Message

    @property
    def role(self) -> str:
        return str(self.payload.get("role", ""))

    @property
    def kind(self) -> str:
        return _legacy_envelope_type(self.payload) or self.role

    @property
    def searchable_text(self) -> str:
        return _legacy_searchable_text(self.payload)

    def to_dict(self) -> Message:
        return copy.deepcopy(self.payload)


AgentMessage: TypeAlias = (
    UserMessage
    | HeartbeatMessage
    | SystemAlertMessage
    | LoginMessage
    | AssistantCall
    | FunctionResult
    | SystemMessage
    | RawMessage
)
_ENVELOPES: dict[str, type[UserMessage | HeartbeatMessage | SystemAlertMessage | LoginMessage]] = {
    "user_message": UserMessage,
    "heartbeat": HeartbeatMessage,
    "system_alert": SystemAlertMessage,
    "login": LoginMessage,
}
_ROLES: dict[str, type[AssistantCall | FunctionResult | SystemMessage]] = {
    "assistant": AssistantCall,
    "function": FunctionResult,
    "system": SystemMessage,
}


def message_from_dict(payload: Message) -> AgentMessage:
    """The typed message a stored dict is; a RawMessage unless its `to_dict()` gives back exactly `payload`."""
    try:
        message = _typed(payload)
    except (ValueError, KeyError, TypeError, AttributeError):
        return RawMessage(copy.deepcopy(payload))
    if _dumps(message.to_dict()) != _dumps(payload):  # key order and JSON text included
        return RawMessage(copy.deepcopy(payload))
    return message


def _typed(payload: Message) -> AgentMessage:
    role = payload.get("role")
    if role == "user":
        envelope = json.loads(payload["content"])
        return _ENVELOPES[envelope["type"]].from_dict(payload)
    return _ROLES[str(role)].from_dict(payload)


def boot_sequence() -> list[AgentMessage]:
    """MemGPT's first turn: a worked example of the call format, before the user's first message."""
    return [
        AssistantCall(BOOT_THOUGHTS, "send_message", {"message": BOOT_MESSAGE}),
        FunctionResult("send_message", True, None),
        LoginMessage(),
    ]


# -- the same as dicts, for code that builds or reads stored dicts (samples, tests, bench) ---------------------------
def user_message(text: str, moment: datetime | None = None) -> Message:
    return UserMessage(text, now_text(moment)).to_dict()


def heartbeat_message(reason: str, moment: datetime | None = None) -> Message:
    return HeartbeatMessage(reason, now_text(moment)).to_dict()


def system_alert(text: str, moment: datetime | None = None) -> Message:
    return SystemAlertMessage(text, now_text(moment)).to_dict()


def login_message(moment: datetime | None = None) -> Message:
    return LoginMessage(FIRST_LOGIN, now_text(moment)).to_dict()


def assistant_call(thoughts: str | None, name: str, arguments: dict[str, Any]) -> Message:
    return AssistantCall(thoughts or "", name, arguments).to_dict()


def function_result(name: str, ok: bool, message: str | None, moment: datetime | None = None) -> Message:
    return FunctionResult(name, ok, message, now_text(moment)).to_dict()


def boot_messages() -> list[Message]:
    return [message.to_dict() for message in boot_sequence()]


def searchable_text(message: Message) -> str:
    """What recall search indexes for a stored message: the words, not the JSON around them."""
    return message_from_dict(message).searchable_text


def envelope_type(message: Message) -> str | None:
    """'user_message', 'heartbeat', 'system_alert', 'login' for user-role envelopes."""
    return _legacy_envelope_type(message)


def _legacy_searchable_text(message: Message) -> str:
    content = message.get("content") or ""
    if message.get("role") == "user":
        try:
            envelope = json.loads(content)
        except (json.JSONDecodeError, TypeError):
            return str(content)
        if isinstance(envelope, dict):
            return str(envelope.get("message") or envelope.get("reason") or "")
        return str(content)
    if message.get("role") == "assistant":
        call = message.get("function_call") or {}
        args = call.get("arguments") or "{}"
        try:
            args = json.loads(args) if isinstance(args, str) else args
        except json.JSONDecodeError:
            args = {}
        said = args.get("message", "") if isinstance(args, dict) and call.get("name") == "send_message" else ""
        return " ".join(str(part) for part in (content, said) if part)
    return str(content)


def _legacy_envelope_type(message: Message) -> str | None:
    if message.get("role") != "user":
        return None
    try:
        envelope = json.loads(message.get("content") or "")
    except (json.JSONDecodeError, TypeError):
        return "user_message"
    return envelope.get("type") if isinstance(envelope, dict) else "user_message"
