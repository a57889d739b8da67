"""You are the model: the end of each prompt is shown and you type the raw output.

For trying prompts, wrappers and the agent loop (heartbeats, errors, memory edits) without loading a
model: type exactly what a model would emit, e.g. a function call in the wrapper's format. The input
and output functions are injectable so tests can script the human.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from memagent.llm.backends.base import Backend, Completion, CompletionRequest, estimate_tokens
from memagent.llm.types import Capabilities

DEFAULT_CONTEXT_LENGTH = 8192
END_MARK = "."


class HumanBackend(Backend):
    name = "human"
    capabilities = Capabilities(streams=False, typed_by_person=True)

    def __init__(
        self,
        *,
        context_length: int | None = None,
        input_fn: Callable[[str], str] = input,
        output_fn: Callable[[str], None] = print,
        tail_chars: int = 1500,
        **_sampling: Any,  # temperature and the like mean nothing to a human
    ) -> None:
        self._context_length = context_length or DEFAULT_CONTEXT_LENGTH
        self._input = input_fn
        self._output = output_fn
        self._tail_chars = tail_chars

    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def generate(self, request: CompletionRequest) -> Completion:
        prompt = request.prompt
        tail = prompt[-self._tail_chars :]
        cut = "" if len(tail) == len(prompt) else f" (last {len(tail)} of {len(prompt)} characters)"
        self._output(f"--- prompt{cut} ---\n{tail}")
        self._output(f"--- type the model's output; end with a line holding only {END_MARK!r} (or EOF) ---")
        text = _cut_at_stop("\n".join(self._read_lines()), request.stop)
        if request.on_text is not None and text:
            request.on_text(text)
        return Completion(text=text, completion_tokens=estimate_tokens(text))

    def _read_lines(self) -> list[str]:
        lines: list[str] = []
        while True:
            try:
                line = self._input("")
            except EOFError:
                return lines
            if line.strip() == END_MARK:
                return lines
            lines.append(line)


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Stop strings end the output as they would on a server, so typed text behaves like generated text."""
    positions = [text.find(s) for s in stop if s and s in text]
    return text[: min(positions)] if positions else text
