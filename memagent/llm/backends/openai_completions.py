"""Any server with an OpenAI-style raw-prompt `POST /v1/completions`.

Written against llama-cpp-python's server (which takes a GBNF `grammar` and has `/extras/tokenize`);
also fine for vLLM, LM Studio or FastChat, and the base of the webui, lmstudio and vllm backends, which
differ only in how they take a constraint. `max_tokens` is always sent: several of these servers
default it to 16, which cuts every function call in half.
"""

from __future__ import annotations

from typing import Any, ClassVar

from memagent.llm.backends.base import Completion, Constraint
from memagent.llm.backends.http import HTTPBackend, as_int, dig, finish_reason
from memagent.llm.types import Capabilities


class OpenAICompletionsBackend(HTTPBackend):
    name = "openai-completions"
    label = "OpenAI-compatible server"
    default_endpoint = "http://127.0.0.1:8000"
    completion_path = "/v1/completions"
    # llama-cpp-python only; elsewhere a 404 switches to the estimate
    tokenize_path: ClassVar[str | None] = "/extras/tokenize"
    capabilities = Capabilities(constraint_kinds=frozenset({"gbnf"}), exact_token_count=True)
    # These servers' streams carry no token usage (llama-cpp-python's never does), which a non-streamed
    # answer has: so a call is streamed only when its pieces are shown.
    stream_always = False

    def request_body(
        self, prompt: str, stop: list[str], max_tokens: int, constraint: Constraint | None, *, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {**self.default_fields(), **self.settings}
        if self.model:
            body["model"] = self.model
        body.update(prompt=prompt, max_tokens=max_tokens, stop=stop, stream=stream)
        if constraint is not None and self.can_constrain:
            body.update(self.constraint_fields(constraint))
        return body

    def default_fields(self) -> dict[str, Any]:
        """Fields this server needs beyond the OpenAI ones; the user's settings may override them."""
        return {}

    def constraint_fields(self, constraint: Constraint) -> dict[str, Any]:
        return {"grammar": constraint.gbnf}

    def parse_completion(self, data: dict[str, Any], path: str) -> Completion:
        text = self.wording.require_text(dig(data, "choices", 0, "text"), path, "`choices[0].text`")
        usage = found if isinstance(found := data.get("usage"), dict) else {}
        return Completion(
            text=text,
            finish_reason=finish_reason(dig(data, "choices", 0, "finish_reason")),
            prompt_tokens=as_int(usage.get("prompt_tokens")),
            completion_tokens=as_int(usage.get("completion_tokens")),
        )

    def stream_piece(self, event: dict[str, Any]) -> str | None:
        piece = dig(event, "choices", 0, "text")
        return piece if isinstance(piece, str) else None

    def merge_stream(self, text: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        # The finish reason comes in the last chunk that has one; usage, if sent, in a chunk of its own.
        reasons = [r for e in events if (r := dig(e, "choices", 0, "finish_reason"))]
        usages = [e["usage"] for e in events if isinstance(e.get("usage"), dict)]
        choice = {"text": text, "finish_reason": reasons[-1] if reasons else None}
        merged: dict[str, Any] = {"choices": [choice]}
        if usages:
            merged["usage"] = usages[-1]
        return merged

    def tokenize_body(self, text: str) -> dict[str, Any]:
        return {"input": text}
