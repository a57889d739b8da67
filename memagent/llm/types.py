"""The plain values of the model layer: what a completion is asked with and what comes back.

These sit below the backends and the constraint builder, so both import them and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length"]
ConstraintKind = Literal["gbnf", "json_schema"]


@dataclass(frozen=True)
class Constraint:
    """What the model's output must look like, in both forms backends accept."""

    json_schema: dict[str, Any]
    gbnf: str


@dataclass
class Completion:
    text: str
    finish_reason: FinishReason = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Prompt tokens the backend actually evaluated (the rest came from its KV cache), when it says so.
    prompt_tokens_evaluated: int | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CompletionRequest:
    """One raw-prompt completion: continue `prompt` until a `stop` string or `max_tokens`, shaped by
    `constraint` if the backend can enforce it; `on_text` receives the pieces as they stream, if it streams."""

    prompt: str
    stop: tuple[str, ...] = ()
    max_tokens: int = 512
    constraint: Constraint | None = None
    on_text: Callable[[str], None] | None = None
