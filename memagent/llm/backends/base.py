"""The backend seam: one small protocol every way of running a model implements.

Seed 003's interface (count_tokens, a completion call, choose_from_options, the context length), over a
raw prompt string: the wrapper owns the prompt format, the backend only runs text through a model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

from memagent.llm.types import Completion, CompletionRequest, Constraint, ConstraintKind, FinishReason

__all__ = [
    "Backend",
    "Completion",
    "CompletionRequest",
    "Constraint",
    "ConstraintKind",
    "FinishReason",
    "estimate_tokens",
]


class Backend(ABC):
    """Runs a prompt through a model. Implementations live one per file beside this one."""

    name: ClassVar[str]
    # Which constraint forms this backend can enforce; empty means it can't constrain output.
    constraint_kinds: ClassVar[frozenset[ConstraintKind]] = frozenset()

    @property
    @abstractmethod
    def context_length(self) -> int:
        """The model's context window in tokens, as this backend runs it."""

    def complete(
        self,
        prompt: str,
        *,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        constraint: Constraint | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        """Generate a continuation of `prompt`. `on_text` receives pieces as they stream, if it streams."""
        request = CompletionRequest(prompt, tuple(stop), max_tokens, constraint, on_text)
        return self.generate(request)

    @abstractmethod
    def generate(self, request: CompletionRequest) -> Completion:
        """Run one completion request through the model (what `complete` calls)."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens in `text` by this model's own tokenizer (or a documented estimate)."""

    @property
    def can_constrain(self) -> bool:
        return bool(self.constraint_kinds)

    def choose_from_options(self, prompt: str, options: Sequence[str]) -> str:
        """Ask the model to pick one of `options`: constrained where possible, else the closest match."""
        from memagent.llm.constraint import choice_constraint

        constraint = choice_constraint(options) if self.can_constrain else None
        text = self.complete(prompt, max_tokens=32, constraint=constraint).text.strip().strip('"')
        for option in options:
            if text == option:
                return option
        for option in options:
            if option.lower() in text.lower():
                return option
        return options[0]

    def check_reachable(self) -> None:  # noqa: B027 - optional hook, in-process backends are always there
        """Raise BackendError in one line if the model can't be reached now (called once at start)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release the model or connection. Safe to call twice."""


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (about 4 characters a token) for backends that can't count."""
    return max(1, (len(text) + 3) // 4) if text else 0
