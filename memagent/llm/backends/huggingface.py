"""HuggingFace transformers in process (the `huggingface` extra): a local model directory or a GGUF file.

Seed 003's HuggingFace backend, local only: every load passes `local_files_only=True`, so a missing file
is an error and never a download. A GGUF is dequantized by transformers into a float32 PyTorch model (it
needs the `gguf` and `accelerate` packages), with the tokenizer rebuilt from the same file.

Generation is a plain token loop rather than `generate()`, because the loop is where the agent's needs
are easy to meet: stop strings cut exactly where a server would cut, streamed text never shows part of a
stop string, "length" is reported when the budget ran out, and the KV cache is kept between calls and
cropped to the longest common token prefix, so a stable prompt prefix is evaluated once (as llama.cpp does).

No constraint: transformers has no GBNF, and enforcing the JSON-schema grammar from Python means checking
every vocabulary entry at every step, far too slow on a CPU. `constraint_kinds` is empty, so the wrapper
describes the format in the prompt and the parser repairs or retries what comes back.

A call has a deadline (`timeout`, generous by default), checked after every generated token.

torch and transformers are imported only when a model is loaded (importing torch alone takes seconds).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memagent.errors import BackendError, ConfigError, ContextOverflowError, ModelFileError
from memagent.llm.backends.base import Backend, Completion, CompletionRequest
from memagent.llm.backends.deadline import DEFAULT_EMBEDDED_TIMEOUT, TIMEOUT_ADVICE, Clock, Deadline, call_limits
from memagent.llm.types import Capabilities

DEFAULT_CONTEXT = 8192
INSTALL_HINT = "Install the huggingface extra: pip install 'memagent[huggingface]'."
_INCOMPLETE = "\ufffd"  # what a token holding half of a UTF-8 character decodes to, until the rest comes


class HuggingFaceBackend(Backend):
    name = "huggingface"
    capabilities = Capabilities(exact_token_count=True, model_metadata=True, in_process=True)

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        context_length: int | None = None,
        temperature: float = 0.3,
        top_p: float = 1.0,
        top_k: int = 0,
        repetition_penalty: float = 1.0,
        seed: int = 42,
        threads: int | None = None,
        timeout: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        """`temperature` 0 is greedy decoding; `top_k` 0 and `top_p` 1.0 turn those filters off."""
        _check_sampling(temperature, top_p, top_k, repetition_penalty)
        self.limits = call_limits(timeout, default=DEFAULT_EMBEDDED_TIMEOUT)
        self._clock = clock
        self.model_path = _resolve_model_path(model_path)
        self._torch, transformers = _import_libraries(self.model_path)
        if threads:
            self._torch.set_num_threads(threads)
        self._tokenizer, self._model = _load(transformers, self.model_path)
        self._context_length = _context_length(self._model, context_length, self.model_path)
        self._eos = _eos_ids(self._tokenizer, self._model)
        self._last_logits_only = _last_logits_only(self._model)
        self._processors = _processors(transformers, temperature, top_p, top_k, repetition_penalty)
        self._sample = temperature > 0
        self._generator = self._torch.Generator().manual_seed(seed)
        self._cache: Any = None  # the model's KV cache for the tokens in self._cached
        self._cached: list[int] = []

    # -- Backend -----------------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def metadata(self) -> dict[str, str]:
        """The chat template, under the GGUF key name, so the wrapper is picked as for the embedded backend."""
        template = getattr(self._tokenizer, "chat_template", None)
        return {"tokenizer.chat_template": template} if isinstance(template, str) else {}

    def generate(self, request: CompletionRequest) -> Completion:
        # request.constraint is ignored: this backend can't constrain (see the module doc)
        ids = self._encode(request.prompt)
        if not ids:
            raise BackendError("The huggingface backend got an empty prompt: there is nothing to continue.")
        if len(ids) >= self._context_length:
            raise ContextOverflowError(len(ids), self._context_length)
        budget = max(0, min(request.max_tokens, self._context_length - len(ids)))
        try:
            with self._torch.inference_mode():
                return self._generate(ids, [s for s in request.stop if s], budget, request.on_text)
        except RuntimeError as exc:  # torch's errors (out of memory, bad shapes) are RuntimeErrors
            self._cache, self._cached = None, []
            raise BackendError(f"The huggingface model {self.model_path.name} failed: {_one_line(exc)}") from exc

    def close(self) -> None:
        self._cache, self._cached = None, []
        self._model = None

    # -- generation --------------------------------------------------------------------------------
    def _generate(
        self, ids: list[int], stop: list[str], budget: int, on_text: Callable[[str], None] | None
    ) -> Completion:
        started = time.perf_counter()
        deadline = Deadline(self.limits.overall, self._clock)
        logits, evaluated = self._prefill(ids)
        prompt_ms = (time.perf_counter() - started) * 1000
        stream = _StopStream(stop, on_text)
        generated: list[int] = []
        finish = "length"
        for step in range(budget):
            token = self._pick(logits, ids + generated)
            if token in self._eos:
                finish = "stop"
                break
            generated.append(token)
            if stream.update(self._tokenizer.decode(generated, skip_special_tokens=False)):
                finish = "stop"
                break
            if deadline.expired:
                raise BackendError(
                    f"The huggingface model {self.model_path.name} did not finish within the "
                    f"{self.limits.overall:g} s deadline: {TIMEOUT_ADVICE}."
                )
            if step + 1 < budget:
                logits = self._forward([token])
        stream.flush()
        return Completion(
            text=stream.text,
            finish_reason="stop" if finish == "stop" else "length",
            prompt_tokens=len(ids),
            completion_tokens=len(generated),
            prompt_tokens_evaluated=evaluated,
            timings={"prompt_ms": prompt_ms, "predicted_ms": (time.perf_counter() - started) * 1000 - prompt_ms},
        )

    def _prefill(self, ids: list[int]) -> tuple[Any, int]:
        """Evaluate the prompt, reusing the cached KV entries of the longest common token prefix."""
        reuse = 0
        for cached, new in zip(self._cached, ids, strict=False):
            if cached != new:
                break
            reuse += 1
        reuse = min(reuse, len(ids) - 1)  # the last prompt token is always evaluated: its logits are needed
        if reuse < len(self._cached):
            self._crop(reuse)
        fresh = ids[len(self._cached) :]
        return self._forward(fresh), len(fresh)

    def _crop(self, length: int) -> None:
        """Keep the first `length` cached tokens. A negative crop() removes that many tokens from the end:
        the one form transformers 4.x and 5.x both accept (5.x refuses a positive target length)."""
        crop = getattr(self._cache, "crop", None)
        if length > 0 and callable(crop):
            crop(length - len(self._cached))
            self._cached = self._cached[:length]
        else:  # a cache that can't be cropped is dropped: correct, only slower
            self._cache, self._cached = None, []

    def _forward(self, tokens: list[int]) -> Any:
        """Run `tokens` through the model after the cached ones; the next token's logits.

        The cache is taken out first: if this call is interrupted (Ctrl-C, an error) it may hold a
        half-updated state, and dropping it costs one full prompt evaluation next time, nothing more."""
        cache, self._cache = self._cache, None
        cached, self._cached = self._cached, []
        tensor = self._torch.tensor([tokens])
        output = self._model(input_ids=tensor, past_key_values=cache, use_cache=True, **self._last_logits_only)
        self._cache, self._cached = output.past_key_values, cached + tokens
        return output.logits[0, -1]

    def _pick(self, logits: Any, history: list[int]) -> int:
        if self._processors:
            logits = self._processors(self._torch.tensor([history]), logits[None, :])[0]
        if not self._sample:
            return int(self._torch.argmax(logits))
        probabilities = self._torch.softmax(logits.float(), dim=-1)
        return int(self._torch.multinomial(probabilities, 1, generator=self._generator))

    def _encode(self, text: str) -> list[int]:
        return list(self._tokenizer(text, add_special_tokens=True)["input_ids"])


class _StopStream:
    """The generated text so far, cut at the first stop string, streamed without any stop string's start.

    A piece is passed on only once no stop string can begin inside it, and never ending in half a UTF-8
    character, so what `on_text` received always equals the final text's start."""

    def __init__(self, stop: list[str], on_text: Callable[[str], None] | None) -> None:
        self.stop = stop
        self.on_text = on_text
        self.text = ""
        self.sent = 0

    def update(self, decoded: str) -> bool:
        """Take the whole decoded text; True when it reached a stop string (then cut before it)."""
        hits = [i for i in (decoded.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.text = decoded[: min(hits)]
            return True
        self.text = decoded
        self._send(len(decoded) - self._held_back(decoded))
        return False

    def flush(self) -> None:
        """The end: half a character left by the token budget is dropped, the rest passed on."""
        self.text = self.text.rstrip(_INCOMPLETE)
        self._send(len(self.text))

    def _held_back(self, text: str) -> int:
        if text.endswith(_INCOMPLETE):
            return len(text) - len(text.rstrip(_INCOMPLETE))
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:n]):
                    longest = n
                    break
        return longest

    def _send(self, end: int) -> None:
        if self.on_text is not None and end > self.sent:
            self.on_text(self.text[self.sent : end])
        self.sent = max(self.sent, end)


# -- loading ---------------------------------------------------------------------------------------
def _resolve_model_path(model_path: Path | str | None) -> Path:
    """A transformers model directory or a GGUF file; by default the SmolLM2 GGUF of the local extra."""
    if model_path is None:
        from memagent.llm.backends.embedded import default_model_path

        return default_model_path()
    path = Path(model_path).expanduser()
    if not path.exists():
        raise ModelFileError(f"Model not found: {path}. Give a model directory or a .gguf file.")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelFileError(f"Not a transformers model directory (no config.json): {path}.")
        return path
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ModelFileError(f"Not a GGUF file or a model directory: {path}.")
    return path


def _import_libraries(path: Path) -> tuple[Any, Any]:
    missing = [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]
    if path.is_file():
        missing += [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"The huggingface backend needs {', '.join(missing)}. {INSTALL_HINT}")
    import torch
    import transformers

    return torch, transformers


def _load(transformers: Any, path: Path) -> tuple[Any, Any]:
    """Tokenizer and model from local files only. Progress bars and warnings are silenced: the terminal
    belongs to the chat."""
    directory, options = (path, {}) if path.is_dir() else (path.parent, {"gguf_file": path.name})
    transformers.logging.set_verbosity_error()
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the GGUF converter's tqdm bar writes here
            tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True, **options)
            model = transformers.AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, **options)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise ModelFileError(f"transformers could not load {path}: {_one_line(exc)}") from exc
    model.eval()
    return tokenizer, model


def _context_length(model: Any, wanted: int | None, path: Path) -> int:
    """The window asked for, else the model's own capped at DEFAULT_CONTEXT (as the embedded backend)."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if wanted is not None and wanted <= 0:
        raise ConfigError(f"Invalid context length {wanted}: it must be a positive number of tokens.")
    if wanted is not None and isinstance(limit, int) and wanted > limit:
        raise ConfigError(f"Context length {wanted} is more than {path.name} was trained for ({limit} tokens).")
    return wanted or min(limit if isinstance(limit, int) else DEFAULT_CONTEXT, DEFAULT_CONTEXT)


def _last_logits_only(model: Any) -> dict[str, int]:
    """Ask for the last position's logits only, where the model can: for a 2,000-token prompt the full
    logits are 2,000 x vocabulary floats (about 400 MB for SmolLM2) that nobody reads."""
    parameters = inspect.signature(model.forward).parameters
    for name in ("logits_to_keep", "num_logits_to_keep"):  # transformers >= 4.50, 4.45-4.49
        if name in parameters:
            return {name: 1}
    return {}


def _eos_ids(tokenizer: Any, model: Any) -> frozenset[int]:
    """End-of-sequence tokens: the tokenizer's and the generation config's (often a list)."""
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        ids.update(value if isinstance(value, list) else [value] if isinstance(value, int) else [])
    return frozenset(ids)


def _processors(transformers: Any, temperature: float, top_p: float, top_k: int, repetition_penalty: float) -> Any:
    """transformers' own logits processors, in generate()'s order; empty for plain greedy decoding."""
    processors = transformers.LogitsProcessorList()
    if repetition_penalty != 1.0:
        processors.append(transformers.RepetitionPenaltyLogitsProcessor(repetition_penalty))
    if temperature > 0:
        if temperature != 1.0:
            processors.append(transformers.TemperatureLogitsWarper(temperature))
        if top_k > 0:
            processors.append(transformers.TopKLogitsWarper(top_k))
        if top_p < 1.0:
            processors.append(transformers.TopPLogitsWarper(top_p))
    return processors


def _check_sampling(temperature: float, top_p: float, top_k: int, repetition_penalty: float) -> None:
    if temperature < 0:
        raise ConfigError(f"Invalid temperature {temperature}: it must be 0 (greedy) or more.")
    if not 0 < top_p <= 1:
        raise ConfigError(f"Invalid top_p {top_p}: it must be more than 0 and at most 1.")
    if top_k < 0:
        raise ConfigError(f"Invalid top_k {top_k}: it must be 0 (off) or more.")
    if repetition_penalty <= 0:
        raise ConfigError(f"Invalid repetition_penalty {repetition_penalty}: it must be more than 0.")


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
