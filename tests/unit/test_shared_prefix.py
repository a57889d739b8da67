"""The shared prompt prefix of the embedded backend: evaluated once, saved, and the start of the next new agent.

llama.cpp is replaced by a stand-in whose tokens are the prompt's bytes and whose state files hold the token list, so
what is evaluated, saved and loaded can be counted exactly. The real model is in tests/integration/test_kv_cache.py.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from fakes import ByteLlama

from memagent.llm.backends import embedded
from memagent.llm.backends.embedded import EmbeddedBackend
from memagent.llm.backends.thread_choice import ThreadChoice
from memagent.llm.types import CompletionRequest

SHARED = "You are an agent. " * 20 + "Functions: send_message(message), archival_memory_search(query)."


@pytest.fixture(autouse=True)
def fake_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    """State files hold the token list as JSON, as llama_state_save_file/llama_state_load_file would hold the KV."""

    def save(ctx: ByteLlama, path: bytes, tokens: Any, count: int) -> bool:
        Path(path.decode()).write_text(json.dumps(list(tokens[:count])))
        return True

    def load(ctx: ByteLlama, path: bytes, tokens: Any, capacity: int, count: Any) -> bool:
        try:
            saved = json.loads(Path(path.decode()).read_text())
        except ValueError:
            return False
        for i, token in enumerate(saved):
            tokens[i] = token
        count._obj.value = len(saved)
        return True

    fake = types.SimpleNamespace(llama_state_save_file=save, llama_state_load_file=load, llama_token=ctypes.c_int32)
    monkeypatch.setitem(sys.modules, "llama_cpp", fake)


def backend(tmp_path: Path, model: str = "m.gguf") -> EmbeddedBackend:
    path = tmp_path / model
    if not path.exists():
        path.write_bytes(b"GGUF" + model.encode())
    instance = EmbeddedBackend.__new__(EmbeddedBackend)
    instance.model_path = path
    instance.prefix_cache = tmp_path / "cache" / "prefix"
    instance.temperature, instance.repeat_penalty, instance._grammars = 0.3, 1.1, {}
    instance.limits = embedded.call_limits(None, default=embedded.DEFAULT_EMBEDDED_TIMEOUT)
    instance._clock = lambda: 0.0
    instance._llm = ByteLlama()
    instance._busy, instance._threads = threading.RLock(), ThreadChoice((1,))
    return instance


def ask(instance: EmbeddedBackend, prompt: str) -> int | None:
    completion = instance.generate(CompletionRequest(prompt, shared_prefix=len(SHARED)))
    return completion.prompt_tokens_evaluated


def test_a_new_agent_starts_from_the_prefix_an_earlier_agent_evaluated(tmp_path: Path) -> None:
    first = backend(tmp_path)
    first_prompt = SHARED + "\nMemory: the user is Brad.\nUSER: hi"
    assert ask(first, first_prompt) == len(first_prompt) + 1  # cold: everything, the prefix included
    assert len(list((tmp_path / "cache" / "prefix").glob("prefix-*.kv"))) == 1

    second = backend(tmp_path)  # another process: nothing in its KV cache
    second_prompt = SHARED + "\nMemory: the user is Ann.\nUSER: hello"
    evaluated = ask(second, second_prompt)
    assert second._llm.evaluated == evaluated == len(second_prompt) - len(SHARED)  # only what is its own
    assert second._llm.input_ids[: len(SHARED) + 1] == [1, *SHARED.encode()]  # the KV cache holds the prefix


def test_later_turns_and_resumed_agents_do_not_touch_the_prefix_file(tmp_path: Path) -> None:
    instance = backend(tmp_path)
    ask(instance, SHARED + "\nUSER: one")
    (state,) = (tmp_path / "cache" / "prefix").glob("prefix-*.kv")
    state.write_text("[]")  # would load nothing useful if it were read again
    before = instance._llm.evaluated
    assert ask(instance, SHARED + "\nUSER: one\nASSISTANT: ok\nUSER: two") == len("\nASSISTANT: ok\nUSER: two")
    assert instance._llm.evaluated - before == len("\nASSISTANT: ok\nUSER: two")


def test_another_model_or_prefix_gets_its_own_file_and_a_damaged_one_is_evaluated_again(tmp_path: Path) -> None:
    ask(backend(tmp_path), SHARED + "\nUSER: hi")
    ask(backend(tmp_path, "other.gguf"), SHARED + "\nUSER: hi")
    files = sorted((tmp_path / "cache" / "prefix").glob("prefix-*.kv"))
    assert len(files) == 2

    for state in files:
        state.write_text("not a state")
    third = backend(tmp_path)
    assert ask(third, SHARED + "\nUSER: hi") == len(SHARED + "\nUSER: hi") + 1  # cold again, and right
    assert third._llm.input_ids[: len(SHARED) + 1] == [1, *SHARED.encode()]


def test_only_a_few_prefix_files_are_kept(tmp_path: Path) -> None:
    for n in range(embedded.MAX_PREFIX_FILES + 2):
        instance = backend(tmp_path)
        prompt = f"{n} " + SHARED + "\nUSER: hi"
        instance.generate(CompletionRequest(prompt, shared_prefix=len(SHARED)))
    assert len(list((tmp_path / "cache" / "prefix").glob("prefix-*.kv"))) == embedded.MAX_PREFIX_FILES
    assert len(list((tmp_path / "cache" / "prefix").glob("prefix-*.kv.json"))) == embedded.MAX_PREFIX_FILES


def test_without_a_shared_prefix_or_a_folder_nothing_is_saved(tmp_path: Path) -> None:
    instance = backend(tmp_path)
    instance.generate(CompletionRequest(SHARED + "\nUSER: hi"))
    instance.prefix_cache = None
    instance.generate(CompletionRequest("x" + SHARED, shared_prefix=len(SHARED)))
    assert not (tmp_path / "cache" / "prefix").exists()


class CacheKeeper(embedded.Backend):
    """A backend that keeps evaluated prompts on disk, as the embedded one does, without llama.cpp."""

    name = "keeper"
    capabilities = embedded.Capabilities(kv_cache=True)

    def __init__(self, *, context_length: int | None = None, prefix_cache: Path | None = None) -> None:
        self.prefix_cache = prefix_cache

    context_length = 4096

    def count_tokens(self, text: str) -> int:
        return len(text)

    def generate(self, request: CompletionRequest) -> embedded.Completion:
        return embedded.Completion("")


def test_the_factory_gives_a_backend_that_keeps_caches_the_shared_prefix_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memagent.errors import ConfigError
    from memagent.llm.backends.registry import BACKENDS, check_settings, create_backend

    monkeypatch.setitem(BACKENDS._entries, "keeper", CacheKeeper)
    made = create_backend("keeper", cache_folder=tmp_path / "cache")
    assert isinstance(made, CacheKeeper) and made.prefix_cache == tmp_path / "cache" / "prefix"
    assert create_backend("human", cache_folder=tmp_path / "cache").name == "human"  # no cache: not given one
    with pytest.raises(ConfigError, match="prefix_cache"):
        check_settings("embedded", {"prefix_cache": str(tmp_path)})  # an LLM config can't point it elsewhere


def test_preparing_the_prefix_before_the_first_turn_says_so_only_when_it_must_evaluate(tmp_path: Path) -> None:
    heard: list[int] = []
    first = backend(tmp_path)
    assert first.prepare_prefix(SHARED + "\nMemory: Brad", len(SHARED), heard.append) == len(SHARED) + 1
    assert heard == [len(SHARED) + 1]  # told before the work, with its size
    assert first.prepare_prefix(SHARED + "\nMemory: Brad", len(SHARED), heard.append) == 0  # already in the cache
    second = backend(tmp_path)
    assert second.prepare_prefix(SHARED + "\nMemory: Ann", len(SHARED), heard.append) == 0  # loaded from the file
    assert heard == [len(SHARED) + 1] and second._llm.evaluated == 0
    # its first turn then evaluates only its own part
    assert ask(second, SHARED + "\nMemory: Ann\nUSER: hi") == len("\nMemory: Ann\nUSER: hi")


def test_an_unknown_kv_cache_type_is_one_line_naming_the_choices(tmp_path: Path) -> None:
    from memagent.errors import ConfigError

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    with pytest.raises(ConfigError, match="kv_cache_type 'q2' is not one of q8_0-k, f16, q8_0, q4_0"):
        EmbeddedBackend(model, kv_cache_type="q2")


def test_the_next_prompt_keeps_the_tokens_the_reply_was_sampled_as(tmp_path: Path) -> None:
    instance = backend(tmp_path)
    prompt = SHARED + "\nUSER: one\nASSISTANT: "
    instance.generate(CompletionRequest(prompt))  # the fake writes "ok"
    sampled = instance._llm.input_ids[: instance._llm.n_tokens]
    assert sampled[-2:] == list(b"ok")
    # were the text tokenized again, its tokens would differ (as a reply sampled under a grammar often does)
    instance._llm.tokenize = lambda text, add_bos=True, special=True: [7] * len(text)  # type: ignore[method-assign]
    tokens = instance._prompt_tokens(prompt + "ok\nUSER: two")
    assert tokens == [*sampled, *[7] * len("\nUSER: two")]
    assert instance._prompt_tokens("another prompt") == [7] * len("another prompt")  # not a continuation: as is


def test_a_prefill_while_the_user_types_leaves_only_the_new_message_to_evaluate(tmp_path: Path) -> None:
    instance = backend(tmp_path)
    first = SHARED + "\nUSER: one\nASSISTANT: "
    instance.generate(CompletionRequest(first))  # writes "ok"
    so_far = first + "ok\nFUNCTION RETURN: fine\n"
    before = instance._llm.evaluated
    instance.prefill(so_far + "ASSISTANT: ")  # rendered as the next call would be, without the user's message yet
    assert instance._llm.evaluated - before == len("\nFUNCTION RETURN: fine\nASSISTANT: ")
    before = instance._llm.evaluated
    assert ask(instance, so_far + "USER: two\nASSISTANT: ") == len("USER: two\nASSISTANT: ")
    assert instance._llm.evaluated - before == len("USER: two\nASSISTANT: ")  # the rest was in the cache


def test_a_prefill_and_a_generation_never_run_at_once(tmp_path: Path) -> None:
    instance = backend(tmp_path)
    inside = threading.Event()
    release = threading.Event()
    llm = instance._llm
    plain_eval = llm.eval

    def slow_eval(tokens: list[int]) -> None:
        inside.set()
        release.wait(30)
        plain_eval(tokens)

    llm.eval = slow_eval  # type: ignore[method-assign]
    worker = threading.Thread(target=instance.prefill, args=(SHARED + "\nUSER: one",))
    worker.start()
    assert inside.wait(30)  # the prefill is evaluating, holding the lock every llama.cpp call takes
    assert not instance._busy.acquire(blocking=False)  # so a generation (or a save, or close) would wait here
    release.set()
    worker.join(30)
    assert instance._busy.acquire(blocking=False)  # free again once the prefill is done
    instance._busy.release()
    llm.eval = plain_eval  # type: ignore[method-assign]
    assert instance.generate(CompletionRequest(SHARED + "\nUSER: one!")).text == "ok"
