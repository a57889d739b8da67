"""What an agent is made of besides its messages: its tunables (AgentConfig) and the state persisted with
it in the agents table (AgentState), as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memagent.memory.auto_recall import AutoRecall


@dataclass(frozen=True)
class AgentConfig:
    max_steps_per_turn: int = 8
    max_parse_retries: int = 2
    max_tokens: int = 400
    max_tokens_ceiling: int = 1200
    verify_first_message: bool = True
    first_message_attempts: int = 5
    auto_recall: AutoRecall | None = None  # None: off (see memory/auto_recall.py)


@dataclass
class AgentState:
    """What is persisted for an agent besides its messages and passages."""

    preset: str
    core_memory: dict[str, Any]
    template_fields: dict[str, str] = field(default_factory=dict)
    in_context: list[int] = field(default_factory=list)
    memory_stats: dict[str, Any] = field(default_factory=dict)
    memory_pressure_alerted: bool = False
    first_reply_done: bool = False
    heartbeats_paused_until: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
