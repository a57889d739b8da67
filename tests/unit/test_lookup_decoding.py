"""The embedded backend's generation loop: drafts looked up in the prompt, verified, and the KV cache kept exact.

llama.cpp is replaced by tests/fakes.py's ByteLlama (tokens are bytes, the "model" writes a fixed reply), so what is
drafted, evaluated and kept can be checked exactly; the real model is in tests/integration/test_lookup_decoding.py.
"""

from __future__ import annotations

from fakes import ByteLlama

from memagent.llm.backends.lookup_decoding import DraftIndex, TextStream, generate

PROMPT = b'USER: hi\nASSISTANT: {"function": "send_message", "message": "hello"}\nUSER: bye\nASSISTANT: '
REPLY = b'{"function": "send_message", "message": "goodbye"}'


def run(llm: ByteLlama, prompt: bytes, *, stop: tuple[str, ...] = (), max_tokens: int = 200,
        pieces: list[str] | None = None, draft_tokens: int = 8) -> tuple[str, str, list[int], int, int]:
    tokens = llm.tokenize(prompt)
    stream = TextStream(stop, pieces.append if pieces is not None else None)
    result = generate(llm, tokens, object(), max_tokens=max_tokens, stream=stream, should_stop=lambda: False,
                      draft_tokens=draft_tokens)
    return result.text, result.finish_reason, result.tokens, result.drafted, result.accepted


def test_a_draft_is_what_followed_the_last_tokens_the_last_time_they_occurred() -> None:
    index = DraftIndex(list(b"abcXYZ abcQRS abc"))
    assert bytes(index.draft(3)) == b"QRS"  # "abc" last seen before "QRS"
    assert bytes(index.draft(8)) == b"QRS abc"  # to the end of what exists
    index.append(ord("X"))
    assert bytes(index.draft(8)) == b"YZ abcQR"  # "bcX" occurred once, at the start
    assert DraftIndex(list(b"abcdef")).draft(4) == []  # "def" never occurred before


def test_copied_text_is_drafted_and_kept_and_the_reply_is_exactly_what_was_sampled() -> None:
    llm = ByteLlama(REPLY)
    text, finish, tokens, drafted, accepted = run(llm, PROMPT)
    assert text == REPLY.decode() and finish == "stop" and bytes(tokens) == REPLY
    assert accepted >= 30  # most of '{"function": "send_message", "message": "' came from the prompt
    assert len(llm.batches) <= len(REPLY) - accepted  # each batch evaluates one sampled token and its draft
    assert drafted >= accepted
    # the KV cache holds the prompt and the whole reply, and nothing of a rejected draft
    assert llm.input_ids[: llm.n_tokens] == [1, *PROMPT, *REPLY]


def test_without_drafts_the_same_reply_takes_one_batch_a_token() -> None:
    llm = ByteLlama(REPLY)
    text, _, _, drafted, accepted = run(llm, PROMPT, draft_tokens=0)
    assert text == REPLY.decode() and drafted == accepted == 0
    assert len(llm.batches) == len(REPLY)
    assert llm.input_ids[: llm.n_tokens] == [1, *PROMPT, *REPLY]


def test_a_rejected_draft_leaves_the_kv_cache_and_the_next_turn_reuses_only_what_was_written() -> None:
    reply = b'{"function": "send_message", "message": "help"}'  # "hel" drafts "lo", which the model doesn't write
    llm = ByteLlama(reply)
    text, *_ = run(llm, PROMPT)
    assert text == reply.decode()
    assert llm.input_ids[: llm.n_tokens] == [1, *PROMPT, *reply]
    before = llm.evaluated
    run(llm, PROMPT + reply + b"\nUSER: again\nASSISTANT: ")
    assert llm.evaluated - before == len(b"\nUSER: again\nASSISTANT: ")  # the reply itself was in the cache


def test_the_prompt_is_reused_up_to_the_first_difference_and_its_last_token_always_evaluated() -> None:
    llm = ByteLlama(b"x")
    run(llm, PROMPT)
    before = llm.evaluated
    run(llm, PROMPT)
    assert llm.evaluated - before == 1  # the same prompt: only its last token, for fresh logits
    run(llm, PROMPT[:10] + b"changed")
    assert llm.evaluated - before == 1 + len(b"changed")


def test_a_stop_string_ends_the_text_and_no_part_of_it_is_streamed() -> None:
    llm = ByteLlama(b"hello</s>junk after")
    pieces: list[str] = []
    text, finish, *_ = run(llm, b"Q: ", stop=("</s>",), pieces=pieces)
    assert text == "hello" and finish == "stop"
    assert "".join(pieces) == "hello"  # "<", "</" were held back until they could no longer start the stop


def test_max_tokens_ends_with_length() -> None:
    text, finish, tokens, *_ = run(ByteLlama(b"abcdefgh"), b"Q: ", max_tokens=3)
    assert text == "abc" and finish == "length" and len(tokens) == 3


def test_a_character_split_across_tokens_streams_whole() -> None:
    pieces: list[str] = []
    text, *_ = run(ByteLlama("café ☕".encode()), b"Q: ", pieces=pieces)
    assert text == "café ☕" and "".join(pieces) == "café ☕"
    assert all("\ufffd" not in piece for piece in pieces)


def test_a_prompt_as_long_as_the_context_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="context holds 16"):
        run(ByteLlama(context=16), b"x" * 20)


def test_generation_stops_when_the_context_is_full() -> None:
    text, finish, *_ = run(ByteLlama(b"y" * 50, context=16), b"x" * 10)
    assert finish == "length" and 0 < len(text) <= 6


def test_every_generated_batch_is_reported_with_the_tokens_it_gave_before_the_next_is_evaluated() -> None:
    llm = ByteLlama(REPLY)
    reports: list[tuple[float, int, int]] = []  # seconds, tokens, batches evaluated when told
    result = generate(llm, llm.tokenize(PROMPT), object(), max_tokens=200, stream=TextStream((), None),
                      should_stop=lambda: False,
                      after_batch=lambda seconds, tokens: reports.append((seconds, tokens, len(llm.batches))))
    assert len(reports) == len(llm.batches)  # each batch once, the last one when the reply ends
    assert [evaluated for *_, evaluated in reports] == list(range(1, len(llm.batches) + 1))  # before the next batch
    assert all(seconds >= 0 for seconds, *_ in reports)
    # the first token comes from the prompt's evaluation; every other one from exactly one batch
    assert sum(tokens for _, tokens, _ in reports) == len(result.tokens) - 1
