"""How many threads generate: chosen by measuring, call after call.

On a quiet 2-CPU machine two generating threads are 1.55x faster than one (SmolLM2: 59 against 38 tokens a second).
But llama.cpp's threads wait for each other after every operation of every layer, so when other work holds one of
the CPUs two threads can be several times slower than one (measured here: 4 against 13 tokens a second with two
other busy processes). Neither choice is right on every machine and at every moment, so the embedded backend
times each generation's batches, keeps a moving average of the time per token for each choice, generates with the
faster one, and every few calls tries the other again in case the machine's load changed.
"""

from __future__ import annotations

RETRY_EVERY = 8  # calls between tries of the choice that was slower
WEIGHT = 0.5  # of a new measurement in the moving average


class ThreadChoice:
    def __init__(self, choices: tuple[int, ...]) -> None:
        self.choices = tuple(dict.fromkeys(choices))  # the first is tried first
        self.seconds_per_token: dict[int, float] = {}
        self._calls = 0

    def next(self) -> int:
        """The thread count for the next generation."""
        untried = [n for n in self.choices if n not in self.seconds_per_token]
        if untried:
            return untried[0]
        ranked = sorted(self.choices, key=lambda n: self.seconds_per_token[n])
        if len(ranked) > 1 and self._calls % RETRY_EVERY == RETRY_EVERY - 1:
            return ranked[1]
        return ranked[0]

    def record(self, threads: int, seconds: float, tokens: int) -> None:
        """A generation with ``threads`` took ``seconds`` for ``tokens`` generated tokens (drafts kept included)."""
        self._calls += 1
        if tokens < 4 or seconds <= 0:  # too short to say anything
            return
        measured = seconds / tokens
        before = self.seconds_per_token.get(threads)
        self.seconds_per_token[threads] = measured if before is None else before + WEIGHT * (measured - before)
