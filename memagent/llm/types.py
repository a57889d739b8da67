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
    `constraint` if the backend can enforce it; `on_text` receives the pieces as they stream, if it streams.
    `shared_prefix` counts the prompt's leading characters that every agent with the same model, wrapper, preset
    and template sends too (0: unknown): a backend may keep their evaluation to start new agents from it."""

    prompt: str
    stop: tuple[str, ...] = ()
    max_tokens: int = 512
    constraint: Constraint | None = None
    on_text: Callable[[str], None] | None = None
    shared_prefix: int = 0


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared on its class (`capabilities: ClassVar[Capabilities]`) and read by
    the agent, the app and the settings, never found by probing for methods or catching errors."""

    constraint_kinds: frozenset[ConstraintKind] = frozenset()  # which constraint forms it enforces; empty: none
    raw_completion: bool = True  # runs a raw prompt (complete/generate); False: chat only
    native_function_calls: bool = False  # has chat_completion(messages, functions) with structured calls
    exact_token_count: bool = False  # count_tokens uses the model's tokenizer (or asks the server); else estimates
    kv_cache: bool = False  # save_cache/load_cache keep the evaluated prompt on disk between sessions
    model_metadata: bool = False  # metadata() gives the model's chat template, for choosing a wrapper
    in_process: bool = False  # loads a model file into this process (takes model_path, not an endpoint)
    needs_model_name: str | None = None  # the server needs a model name: this hints where to find it
    streams: bool = True  # on_text receives the output piece by piece as it is generated
    typed_by_person: bool = False  # a person types the output: nothing to constrain or warn about
