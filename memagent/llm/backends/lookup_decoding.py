"""The embedded backend's generation loop, with drafts looked up in the prompt (prompt-lookup decoding).

An agent's replies repeat what is already in its prompt: every call starts with the same
`{"function": "send_message", "params": {"inner_thoughts": "` as the calls before it, and small models copy phrases
of the user's message. When the last tokens generated also occur earlier in the prompt or the reply, the tokens that
followed them there are a cheap guess (a *draft*) at what comes next. The draft is evaluated in one batch together
with the last generated token, which costs little more than that token alone on a CPU (llama.cpp reads the weights
once per batch: 18 ms for one token, 59 ms for nine, SmolLM2 on 2 cores after 2,500 tokens). Then each position is
sampled exactly as it would be one token at a time (the same sampler chain, grammar, penalties and random state,
position after position), and the draft is kept up to the first token that differs from the one sampled. What is
generated is therefore what the sampler picks from the model's probabilities, draft or not; only the logits of a
batch can differ from those of single tokens in their last bits, as between any two batch sizes in llama.cpp.

The loop also does what llama-cpp-python's `create_completion` did for memagent: it reuses the KV cache for the
longest common token prefix, stops at an end-of-generation token, a stop string or ``max_tokens``, asks a stopping
callback after every token (the deadline), and streams the text without any part of a stop string.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from memagent.llm.backends.llama_state import common_prefix

DRAFT_TOKENS = 8  # the longest draft: a batch of nine costs ~3.3x one token, and longer drafts rarely all hold
NGRAM = 3  # a draft follows the last 3 tokens' latest earlier occurrence
"""Chosen by replaying the tokens of 11 recorded SmolLM2 turns (40 tokens each) with llama.cpp's batch costs on this
CPU (12 ms + 5.8 ms a token): drafts after 3 tokens, at most 8, cut the generation time of a turn from 691 to 361 ms;
after 2 tokens as well, 382 ms (more drafts, more of them wrong); at most 4 or 12 tokens, 372 and 385 ms."""


@dataclass
class Generation:
    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    reused_tokens: int  # prompt tokens found in the KV cache, not evaluated again
    tokens: list[int]  # the generated tokens, without the end-of-generation token
    drafted: int = 0  # draft tokens evaluated
    accepted: int = 0  # of those, the ones sampling agreed with
    prompt_seconds: float = 0.0  # evaluating the prompt's tokens not in the KV cache
    decode_seconds: float = 0.0  # evaluating the generated tokens and their drafts
    grammar_rejections: int = 0  # sampled tokens the grammar refused, sampled again under it (grammar_sampler.py)


class DraftIndex:
    """For each n-gram of a token sequence, where the token after its latest earlier occurrence is."""

    def __init__(self, tokens: Sequence[int], n: int = NGRAM) -> None:
        self.n = n
        self.tokens: list[int] = []
        self._next: dict[tuple[int, ...], int] = {}
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        tokens = self.tokens
        end = len(tokens)  # the n-gram ending here is followed by `token`, at position `end`
        if end >= self.n:
            self._next[tuple(tokens[end - self.n : end])] = end
        tokens.append(token)

    def draft(self, limit: int) -> list[int]:
        """What followed the n-gram at the end of the sequence the last time it occurred (``limit`` tokens at most)."""
        tokens = self.tokens
        start = self._next.get(tuple(tokens[-self.n :])) if len(tokens) >= self.n else None
        return tokens[start : start + limit] if start is not None else []


class TextStream:
    """The generated text, decoded as the tokens arrive, cut at the first stop string."""

    def __init__(self, stop: Sequence[str], on_text: Callable[[str], None] | None) -> None:
        self.stop = [s for s in stop if s]
        self.on_text = on_text
        self.text = ""
        self.sent = 0  # characters of `text` given to on_text
        self.stopped = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, piece: bytes) -> None:
        """Append a token's bytes; sets ``stopped`` when a stop string is complete."""
        self.text += self._decoder.decode(piece)
        cut = min((i for i in (self.text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text, self.stopped = self.text[:cut], True
        self._send(len(self.text) if self.stopped else len(self.text) - self._held_back())

    def finish(self) -> str:
        if not self.stopped:
            self.text += self._decoder.decode(b"", final=True)
        self._send(len(self.text))
        return self.text

    def _held_back(self) -> int:
        """How many trailing characters could still become a stop string (not streamed yet)."""
        held = 0
        for stop in self.stop:
            for size in range(min(len(stop) - 1, len(self.text)), held, -1):
                if self.text.endswith(stop[:size]):
                    held = size
                    break
        return held

    def _send(self, upto: int) -> None:
        if self.on_text is not None and upto > self.sent:
            self.on_text(self.text[self.sent : upto])
            self.sent = upto


def generate(
    llm: Any,
    prompt: list[int],
    sampler: Any,
    *,
    max_tokens: int,
    stream: TextStream,
    should_stop: Callable[[], bool],
    draft_tokens: int = DRAFT_TOKENS,
    after_batch: Callable[[float, int], None] | None = None,
) -> Generation:
    """Generate from ``prompt`` with ``llm`` (llama_model.py's steps: keep_prefix, eval, eval_all, sample_at, is_end,
    piece; and llama-cpp-python's input_ids, n_tokens, n_ctx) and its ``sampler``. ``after_batch(seconds, tokens)`` is
    told what each generated batch cost and how many tokens it gave (its token and the draft tokens kept), before the
    next batch is evaluated (the backend may change llama.cpp's threads there)."""
    batch_seconds: float | None = None  # the last batch's time, until it is told
    counted = 0  # tokens generated before the last batch's own

    def tell() -> None:
        nonlocal batch_seconds, counted
        if after_batch is not None and batch_seconds is not None:
            after_batch(batch_seconds, len(result.tokens) - counted)
        batch_seconds, counted = None, len(result.tokens)

    def end(position: int, reason: Literal["stop", "length"], unverified: list[int]) -> Generation:
        tell()
        return _end(llm, result, stream, unverified, position, reason)

    capacity = llm.n_ctx()
    if len(prompt) >= capacity:
        raise ValueError(f"the prompt is {len(prompt)} tokens, and the context holds {capacity}")
    started = time.perf_counter()
    kept = evaluate_prompt(llm, prompt, fresh_logits=True)
    result = Generation("", "stop", len(prompt), kept, [], prompt_seconds=time.perf_counter() - started)
    index = DraftIndex(prompt)
    draft: list[int] = []
    row = -1  # the row of the last batch whose logits are for the next position (then the draft's rows follow)
    while True:
        for position in range(len(draft) + 1):
            token = llm.sample_at(sampler, row + position)
            agreed = position < len(draft) and token == draft[position]
            if llm.is_end(token):
                return end(position, "stop", draft)
            result.tokens.append(token)
            index.append(token)
            stream.add(llm.piece(token))
            if stream.stopped or should_stop():
                return end(position, "stop", draft)
            if len(result.tokens) >= max_tokens:
                return end(position, "length", draft)
            if not agreed:
                break
        result.accepted += position
        _drop_unverified(llm, draft, position)
        # `token` is sampled but not evaluated: evaluate it, and a new draft after it, in one batch.
        room = capacity - llm.n_tokens - 1
        if room < 0:
            return end(0, "length", [])
        tell()
        draft = index.draft(min(draft_tokens, room))
        result.drafted += len(draft)
        started = time.perf_counter()
        llm.eval_all([token, *draft])
        batch_seconds = time.perf_counter() - started
        result.decode_seconds += batch_seconds
        row = 0


def evaluate_prompt(llm: Any, prompt: list[int], *, fresh_logits: bool) -> int:
    """Make the KV cache hold ``prompt``: keep the longest common prefix with what it holds, evaluate the rest (in
    batches of n_batch). With ``fresh_logits`` the last token is always evaluated, for logits to sample from. Returns
    the tokens kept."""
    cached = common_prefix(llm.input_ids[: llm.n_tokens], prompt)
    kept: int = llm.keep_prefix(min(cached, len(prompt) - 1) if fresh_logits else cached)
    if kept < len(prompt):
        llm.eval(prompt[kept:])
    return kept


def _drop_unverified(llm: Any, draft: list[int], agreed: int) -> None:
    """Forget the draft tokens after the ``agreed`` first ones: they are in the KV cache but were not sampled."""
    unverified = len(draft) - agreed
    if unverified > 0:
        llm.keep_prefix(llm.n_tokens - unverified)


def _end(
    llm: Any, result: Generation, stream: TextStream, draft: list[int], position: int, reason: Literal["stop", "length"]
) -> Generation:
    agreed = min(position, len(draft))
    result.accepted += agreed
    _drop_unverified(llm, draft, agreed)
    result.finish_reason = reason
    result.text = stream.finish()
    return result
