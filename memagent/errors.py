"""The error tree. Every error a user can cause or fix is a UserError: the CLI prints its one line
and exits non-zero. Anything else is a bug and keeps its traceback (shown with --debug)."""

from __future__ import annotations


class MemagentError(Exception):
    """Base of every error memagent raises on purpose."""


class UserError(MemagentError):
    """Something the user can fix: printed as one line (what, where, how to fix), exit code 1."""

    exit_code = 1


class ConfigError(UserError):
    """A bad flag, preset, template, LLM config or settings file."""


class ModelFileError(UserError):
    """A model file that is missing, unreadable or not a GGUF."""


class StoreError(UserError):
    """The SQLite database can't be opened, written or is locked."""


class AgentExistsError(StoreError):
    """An agent with that name is already in the database (another process may have just created it)."""


class StateConflictError(StoreError):
    """An agent's state changed in another process between reading and writing it; re-read and retry."""


class BackendError(UserError):
    """A backend (local server or embedded model) failed: down, refused, stalled, bad answer."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ContextOverflowError(MemagentError):
    """The prompt does not fit the model's context window: the agent summarizes and tries again."""

    def __init__(self, prompt_tokens: int, context_length: int) -> None:
        super().__init__(f"Request exceeds maximum context length ({prompt_tokens} > {context_length} tokens)")
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


class LLMOutputError(MemagentError):
    """Model output that could not be turned into a valid function call. Carries the raw text.

    The agent answers this by sending the model a short correction and retrying (bounded)."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


class GenerationTruncatedError(LLMOutputError):
    """The generation stopped at the token limit before the call was complete."""


class UnsupportedOperation(ConfigError):
    """An operation this backend doesn't have (its capabilities say so), e.g. a raw prompt on a chat-only API."""
