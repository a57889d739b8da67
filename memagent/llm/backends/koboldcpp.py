"""KoboldCpp, through the KoboldAI API `POST /api/v1/generate`.

`max_length` is always sent (KoboldCpp's default, ~100-180 tokens, cuts function calls short, MemGPT
#919), and `max_context_length` too, else KoboldCpp trims the prompt to its own default. `trim_stop`
keeps the stop string out of the text. Streaming is SSE on a separate path, one `token` per event.
"""

from __future__ import annotations

from typing import Any

from memagent.errors import BackendError
from memagent.llm.backends.base import Completion, Constraint
from memagent.llm.backends.http import HTTPBackend, as_int, dig, finish_reason
from memagent.llm.types import Capabilities


class KoboldCppBackend(HTTPBackend):
    name = "koboldcpp"
    label = "KoboldCpp server"
    default_endpoint = "http://127.0.0.1:5001"
    completion_path = "/api/v1/generate"
    stream_path = "/api/extra/generate/stream"
    tokenize_path = "/api/extra/tokencount"
    capabilities = Capabilities(constraint_kinds=frozenset({"gbnf"}), exact_token_count=True)

    def request_body(
        self, prompt: str, stop: list[str], max_tokens: int, constraint: Constraint | None, *, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"trim_stop": True, **self.settings}
        body.update(prompt=prompt, max_length=max_tokens, max_context_length=self.context_length, stop_sequence=stop)
        if constraint is not None:
            body["grammar"] = constraint.gbnf
        return body

    def parse_completion(self, data: dict[str, Any], path: str) -> Completion:
        text = self.wording.require_text(dig(data, "results", 0, "text"), path, "`results[0].text`")
        return Completion(text=text, finish_reason=finish_reason(dig(data, "results", 0, "finish_reason")))

    def stream_piece(self, event: dict[str, Any]) -> str | None:
        piece = event.get("token")
        return piece if isinstance(piece, str) else None

    def merge_stream(self, text: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        reasons = [r for e in events if (r := e.get("finish_reason"))]
        return {"results": [{"text": text, "finish_reason": reasons[-1] if reasons else None}]}

    def tokenize_body(self, text: str) -> dict[str, Any]:
        return {"prompt": text}

    def token_count(self, data: dict[str, Any]) -> int | None:
        return as_int(data.get("value"))

    def discover_context_length(self) -> int:
        value = as_int(self.server.get_json("/api/extra/true_max_context_length").get("value"))
        if not value:
            raise BackendError(
                f"The KoboldCpp server at {self.wording.url('/api/extra/true_max_context_length')} did not say its "
                "context size. Pass --context-length."
            )
        return value
