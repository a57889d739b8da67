"""text-generation-webui (oobabooga, started with `--api`), through its OpenAI-style `/v1/completions`.

It takes a GBNF grammar as `grammar_string`, and `truncation_length` tells it our context size: without
it the server trims the prompt to its own setting, silently cutting the system prompt and memory.
`skip_special_tokens` is off so markers such as `<|im_end|>` reach the wrapper's parser.
"""

from __future__ import annotations

from typing import Any

from memagent.llm.backends.base import Constraint
from memagent.llm.backends.http import as_int
from memagent.llm.backends.openai_completions import OpenAICompletionsBackend
from memagent.llm.types import Capabilities


class WebUIBackend(OpenAICompletionsBackend):
    name = "webui"
    label = "text-generation-webui server"
    default_endpoint = "http://127.0.0.1:5000"
    tokenize_path = "/v1/internal/token-count"
    capabilities = Capabilities(constraint_kinds=frozenset({"gbnf"}), exact_token_count=True)

    def default_fields(self) -> dict[str, Any]:
        return {"truncation_length": self.context_length, "skip_special_tokens": False}

    def constraint_fields(self, constraint: Constraint) -> dict[str, Any]:
        return {"grammar_string": constraint.gbnf}

    def tokenize_body(self, text: str) -> dict[str, Any]:
        return {"text": text}

    def token_count(self, data: dict[str, Any]) -> int | None:
        return as_int(data.get("length"))
