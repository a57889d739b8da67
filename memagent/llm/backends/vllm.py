"""vLLM's OpenAI-compatible server, through `/v1/completions`.

The constraint goes in `structured_outputs: {"json": schema}`. The older top-level `guided_json` was
removed in v0.12 and is silently ignored (HTTP 200, unconstrained), so it is never sent. vLLM needs the
served model name, has its own `/tokenize`, and reports `max_model_len` in `/v1/models`.
"""

from __future__ import annotations

from typing import Any

from memagent.errors import BackendError
from memagent.llm.backends.base import Constraint
from memagent.llm.backends.http import as_int, dig
from memagent.llm.backends.openai_completions import OpenAICompletionsBackend
from memagent.llm.types import Capabilities


class VLLMBackend(OpenAICompletionsBackend):
    name = "vllm"
    label = "vLLM server"
    default_endpoint = "http://127.0.0.1:8000"
    tokenize_path = "/tokenize"
    capabilities = Capabilities(
        constraint_kinds=frozenset({"json_schema"}),
        exact_token_count=True,
        needs_model_name="the served model name, as listed by GET /v1/models",
    )

    def default_fields(self) -> dict[str, Any]:
        return {"skip_special_tokens": False}

    def constraint_fields(self, constraint: Constraint) -> dict[str, Any]:
        return {"structured_outputs": {"json": constraint.json_schema}}

    def tokenize_body(self, text: str) -> dict[str, Any]:
        return {"model": self.model, "prompt": text}

    def token_count(self, data: dict[str, Any]) -> int | None:
        return as_int(data.get("count"))

    def discover_context_length(self) -> int:
        models = self.server.get_json("/v1/models").get("data")
        for entry in models if isinstance(models, list) else []:
            length = as_int(dig(entry, "max_model_len"))
            if dig(entry, "id") == self.model and length:
                return length
        raise BackendError(
            f"The vLLM server at {self.wording.url('/v1/models')} does not list model {self.model!r} with a "
            "max_model_len. Check --model, or pass --context-length."
        )
