"""The backend seam: one small protocol every way of running a model implements.

Seed 003's interface (count_tokens, a completion call, choose_from_options, the context length), over a
raw prompt string: the wrapper owns the prompt format, the backend only runs text through a model.
What else a backend can do (chat with native function calls, a KV cache on disk, the model's metadata) is
declared in its `capabilities`; the optional operations below raise UnsupportedOperation unless a backend
that declares them overrides them, as io's streams do with `seekable()` and `seek()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from memagent.errors import UnsupportedOperation
from memagent.llm.types import Capabilities, Completion, CompletionRequest, Constraint, ConstraintKind, FinishReason

__all__ = [
    "Backend",
    "Capabilities",
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
    # What this backend can do; every backend declares its own.
    capabilities: ClassVar[Capabilities] = Capabilities()

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
        shared_prefix: int = 0,
    ) -> Completion:
        """Generate a continuation of `prompt`. `on_text` receives pieces as they stream, if it streams;
        `shared_prefix` is CompletionRequest's."""
        request = CompletionRequest(prompt, tuple(stop), max_tokens, constraint, on_text, shared_prefix)
        return self.generate(request)

    @abstractmethod
    def generate(self, request: CompletionRequest) -> Completion:
        """Run one completion request through the model (what `complete` calls)."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens in `text` by this model's own tokenizer (or a documented estimate)."""

    @property
    def constraint_kinds(self) -> frozenset[ConstraintKind]:
        """Which constraint forms this backend can enforce; empty means it can't constrain output."""
        return self.capabilities.constraint_kinds

    @constraint_kinds.setter
    def constraint_kinds(self, kinds: frozenset[ConstraintKind]) -> None:
        """One instance that constrains otherwise than its class (a test double): its own capabilities."""
        self.__dict__["capabilities"] = replace(self.capabilities, constraint_kinds=frozenset(kinds))

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

    # -- optional operations, each behind a capability ---------------------------------------------
    def chat_completion(
        self, messages: Sequence[dict[str, Any]], functions: Sequence[dict[str, Any]]
    ) -> tuple[dict[str, Any], Completion]:
        """One chat turn with native function calls (capabilities.native_function_calls): the assistant
        message in MemGPT's shape (`content`, maybe a `function_call`) and its stop reason and usage."""
        raise self._unsupported("chat with native function calls")

    def metadata(self) -> dict[str, str]:
        """The model's metadata under GGUF key names (capabilities.model_metadata), for choosing a wrapper."""
        raise self._unsupported("model metadata")

    def save_cache(self, path: Path) -> None:
        """Write the evaluated prompt's KV cache to `path` (capabilities.kv_cache)."""
        raise self._unsupported("a KV cache on disk")

    def load_cache(self, path: Path) -> int:
        """Restore the KV cache saved at `path`; the number of tokens restored (0: nothing usable)."""
        raise self._unsupported("a KV cache on disk")

    def prepare_prefix(
        self, prompt: str, shared_chars: int, on_evaluate: Callable[[int], None] | None = None
    ) -> int:
        """Get the start of `prompt` that every agent shares (its first `shared_chars` characters) ready before the
        first turn, telling `on_evaluate` how many tokens it has to evaluate; the tokens it evaluated. Backends
        without a shared prefix cache have nothing to do."""
        return 0

    def prefill(self, prompt: str) -> None:
        """Evaluate `prompt` into the KV cache ahead of the call that will continue it (while the user types), so that
        call evaluates only what is new. Safe from another thread: a call that comes meanwhile waits for it. Backends
        that keep no KV cache in this process have nothing to do."""
        return None

    def _unsupported(self, what: str) -> UnsupportedOperation:
        return UnsupportedOperation(f"The {self.name} backend has no {what}.")

    def check_reachable(self) -> None:  # noqa: B027 - optional hook, in-process backends are always there
        """Raise BackendError in one line if the model can't be reached now (called once at start)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release the model or connection. Safe to call twice."""


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (about 4 characters a token) for backends that can't count."""
    return max(1, (len(text) + 3) // 4) if text else 0
