"""Deterministic stand-ins for tests: a backend that replays scripted outputs and records prompts."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from memagent.events import Event
from memagent.llm.backends.base import Backend, Completion, CompletionRequest, Constraint, estimate_tokens


def call(function: str, thoughts: str = "thinking", **args: Any) -> str:
    """A chatml-format call as a constrained model would write it."""
    return json.dumps({"function": function, "params": {"inner_thoughts": thoughts, **args}})


def reply(message: str, thoughts: str = "I should answer.") -> str:
    return call("send_message", thoughts, message=message)


class ScriptedBackend(Backend):
    """Replays `outputs` in order (a str, a Completion, or a callable of the prompt). Records every call.
    With `reports_usage=False` it leaves prompt_tokens unset, as servers that stream without usage do."""

    name = "scripted"

    def __init__(self, outputs: Sequence[str | Completion | Callable[[str], str]] = (), *,
                 context_length: int = 8192, constrain: bool = True, reports_usage: bool = True) -> None:
        self.outputs = list(outputs)
        self.reports_usage = reports_usage
        self._context_length = context_length
        self.constraint_kinds = frozenset({"gbnf"}) if constrain else frozenset()
        self.requests: list[CompletionRequest] = []
        self.prompts: list[str] = []
        self.constraints: list[Constraint | None] = []
        self.max_tokens: list[int] = []

    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def generate(self, request: CompletionRequest) -> Completion:
        prompt = request.prompt
        self.requests.append(request)
        self.prompts.append(prompt)
        self.constraints.append(request.constraint)
        self.max_tokens.append(request.max_tokens)
        if not self.outputs:
            raise AssertionError("ScriptedBackend ran out of outputs")
        item = self.outputs.pop(0)
        if callable(item):
            item = item(prompt)
        completion = item if isinstance(item, Completion) else Completion(text=item)
        if completion.prompt_tokens is None and self.reports_usage:
            completion.prompt_tokens = self.count_tokens(prompt)
        if request.on_text:
            request.on_text(completion.text)
        return completion


class Recorder(list):
    """Collects events; `of(type)` picks them by type."""

    def __call__(self, event: Event) -> None:
        self.append(event)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self if e.type == kind]


class FakeEmbedder:
    """A deterministic stand-in for e5 (``memagent.memory.embed.Embedder``): each word (lower-cased, letters and
    digits) adds one to a dimension chosen by its hash (crc32, stable across runs) or by ``synonyms``, so texts
    sharing words (or synonyms) are near; vectors are L2-normalised, 384 floats like e5's. Counts its calls."""

    model = "fake-embedder"
    dimension = 384

    def __init__(self, synonyms: dict[str, str] | None = None) -> None:
        self.synonyms = synonyms or {}
        self.embedded: list[str] = []
        self.queries: list[str] = []

    def _vector(self, text: str) -> bytes:
        import re
        import zlib
        from array import array

        values = [0.0] * self.dimension
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            word = self.synonyms.get(word, word)
            values[zlib.crc32(word.encode()) % self.dimension] += 1.0
        norm = sum(v * v for v in values) ** 0.5 or 1.0
        return array("f", [v / norm for v in values]).tobytes()

    def passages(self, texts: Sequence[str]) -> list[bytes]:
        self.embedded.extend(texts)
        return [self._vector(text) for text in texts]

    def query(self, text: str) -> bytes:
        self.queries.append(text)
        return self._vector(text)


class ByteLlama:
    """Stands in for the embedded backend's llama_cpp.Llama (memagent/llm/backends/llama_model.py): tokens are the
    bytes of the text after a BOS of 1, token 0 ends a generation, and the "model" writes ``reply`` one byte a step
    (then 0). ``evaluated`` counts the prompt tokens it had to compute; ``batches`` the generation batches evaluated;
    ``on_step`` runs before each sampled token (a clock to advance)."""

    END = 0

    def __init__(self, reply: bytes = b"ok", context: int = 4096, on_step: Callable[[], None] | None = None) -> None:
        self.reply = reply
        self.context = context
        self.on_step = on_step
        self.input_ids = IntList([0] * context)
        self.n_tokens = 0
        self.ctx = self
        self.evaluated = 0
        self.batches: list[list[int]] = []
        self._written = 0  # bytes of the reply sampled so far in this generation

    def n_ctx(self) -> int:
        return self.context

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = True) -> list[int]:
        return [1, *text] if add_bos else list(text)

    def reset(self) -> None:
        self.n_tokens = 0

    def eval(self, tokens: list[int]) -> None:
        self.input_ids[self.n_tokens : self.n_tokens + len(tokens)] = tokens
        self.n_tokens += len(tokens)
        self.evaluated += len(tokens)
        self._written = 0  # a new prompt: the reply starts again

    # -- the generation steps --------------------------------------------------------------------
    def new_sampler(self, **options: Any) -> object:
        return object()

    def keep_prefix(self, count: int) -> int:
        self.n_tokens = max(count, 0)
        return self.n_tokens

    def eval_all(self, tokens: list[int]) -> None:
        self.input_ids[self.n_tokens : self.n_tokens + len(tokens)] = tokens
        self.n_tokens += len(tokens)
        self.batches.append(list(tokens))

    def sample_at(self, sampler: object, row: int) -> int:
        if self.on_step is not None:
            self.on_step()
        if self._written >= len(self.reply):
            return self.END
        self._written += 1
        return self.reply[self._written - 1]

    def set_threads(self, threads: int) -> None:
        self.threads = threads

    def is_end(self, token: int) -> bool:
        return token == self.END

    def piece(self, token: int) -> bytes:
        return bytes([token])


class IntList(list[int]):
    """A list whose slices are IntLists with numpy's tolist(), as llama-cpp-python's input_ids array has."""

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        return IntList(item) if isinstance(index, slice) else item

    def tolist(self) -> list[int]:
        return list(self)
