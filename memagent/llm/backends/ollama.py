"""Ollama, through its native `POST /api/generate` with `raw: true` (our wrapper owns the prompt format).

`options.num_ctx` is always sent: Ollama's own default (2048 or 4096, depending on the version) is
smaller than a MemGPT prompt, and a prompt that doesn't fit is silently cut from the front, which drops
the system prompt and memory without a word. Ollama takes no GBNF, only a JSON schema as `format`;
it has no tokenize endpoint, so token counts are estimates. Streaming is NDJSON, not SSE.
"""

from __future__ import annotations

from typing import Any

from memagent.llm.backends.base import Completion, Constraint
from memagent.llm.backends.http import HTTPBackend, as_int, finish_reason
from memagent.llm.types import Capabilities

DEFAULT_NUM_CTX = 8192


class OllamaBackend(HTTPBackend):
    name = "ollama"
    label = "Ollama server"
    default_endpoint = "http://127.0.0.1:11434"
    completion_path = "/api/generate"
    stream_format = "ndjson"
    default_context_length = DEFAULT_NUM_CTX  # we choose it: it is what num_ctx asks Ollama to allocate
    capabilities = Capabilities(
        constraint_kinds=frozenset({"json_schema"}), needs_model_name="a model name from `ollama list`, e.g. qwen2.5:7b"
    )

    def request_body(
        self, prompt: str, stop: list[str], max_tokens: int, constraint: Constraint | None, *, stream: bool
    ) -> dict[str, Any]:
        options = {**self.settings, "num_ctx": self.context_length, "num_predict": max_tokens, "stop": stop}
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "raw": True, "stream": stream}
        body["options"] = options
        if constraint is not None:
            body["format"] = constraint.json_schema
        return body

    def parse_completion(self, data: dict[str, Any], path: str) -> Completion:
        text = self.wording.require_text(data.get("response"), path, "`response`")
        timings = {
            name: data[key] / 1e6  # Ollama reports nanoseconds; llama.cpp's names and milliseconds
            for name, key in (("prompt_ms", "prompt_eval_duration"), ("predicted_ms", "eval_duration"))
            if isinstance(data.get(key), int | float)
        }
        return Completion(
            text=text,
            finish_reason=finish_reason(data.get("done_reason")),
            prompt_tokens=as_int(data.get("prompt_eval_count")),
            completion_tokens=as_int(data.get("eval_count")),
            timings=timings,
        )

    def stream_piece(self, event: dict[str, Any]) -> str | None:
        piece = event.get("response")
        return piece if isinstance(piece, str) else None

    def merge_stream(self, text: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        # The last line has `"done": true` and the same stats as a non-streamed answer.
        return {**(events[-1] if events else {}), "response": text}

    def status_advice(self, status: int, message: str) -> str | None:
        if status == 404 and "not found" in message.lower():
            return f"Pull it first: ollama pull {self.model}"
        return None
