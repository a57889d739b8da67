"""llama.cpp's `llama-server`, through its native `POST /completion` (not the OpenAI-shaped `/v1` one).

The native endpoint is the one that reports what an agent needs: why generation stopped (`stop_type`),
how much of the prompt was really evaluated (the rest came from the KV cache, thanks to `cache_prompt`),
the real token count (`/tokenize`) and the context size (`/props`).
"""

from __future__ import annotations

from typing import Any

from memagent.errors import BackendError
from memagent.llm.backends.base import Completion, Constraint
from memagent.llm.backends.http import HTTPBackend, as_int, dig
from memagent.llm.types import Capabilities


class LlamaCppBackend(HTTPBackend):
    name = "llamacpp"
    label = "llama.cpp server"
    default_endpoint = "http://127.0.0.1:8080"
    completion_path = "/completion"
    tokenize_path = "/tokenize"
    # It takes both; the GBNF is sent because it is what the wrapper's grammar was written and tested as.
    capabilities = Capabilities(constraint_kinds=frozenset({"gbnf", "json_schema"}), exact_token_count=True)

    def request_body(
        self, prompt: str, stop: list[str], max_tokens: int, constraint: Constraint | None, *, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"cache_prompt": True, **self.settings}
        body.update(prompt=prompt, n_predict=max_tokens, stop=stop, stream=stream)
        if constraint is not None:
            body["grammar"] = constraint.gbnf
        return body

    def parse_completion(self, data: dict[str, Any], path: str) -> Completion:
        text = self.wording.require_text(data.get("content"), path, "`content`")
        timings = found if isinstance(found := data.get("timings"), dict) else {}
        limited = data.get("stop_type") == "limit" or data.get("truncated") is True
        prompt_tokens = as_int(data.get("tokens_evaluated"))
        evaluated = as_int(timings.get("prompt_n"))
        return Completion(
            text=text,
            finish_reason="length" if limited else "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=as_int(data.get("tokens_predicted")),
            # prompt_n counts only what was evaluated this time; the cached prefix is not in it.
            prompt_tokens_evaluated=prompt_tokens if evaluated is None else evaluated,
            timings={k: float(v) for k, v in timings.items() if isinstance(v, int | float)},
        )

    def stream_piece(self, event: dict[str, Any]) -> str | None:
        piece = event.get("content")
        return piece if isinstance(piece, str) else None

    def merge_stream(self, text: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        # No [DONE]: the last event carries `"stop": true` and the same stats as a non-streamed answer.
        return {**(events[-1] if events else {}), "content": text}

    def discover_context_length(self) -> int:
        props = self.server.get_json("/props")
        n_ctx = as_int(dig(props, "default_generation_settings", "n_ctx")) or as_int(props.get("n_ctx"))
        if not n_ctx:
            raise BackendError(
                f"The llama.cpp server at {self.wording.url('/props')} did not say its context size (n_ctx). "
                "Pass --context-length."
            )
        return n_ctx
