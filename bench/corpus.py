"""Generated text for the memory benchmark: seeded pseudo-words with a Zipf distribution, at the lengths an
agent's messages and passages have, and queries drawn from frequency classes of the same vocabulary."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

from memagent.messages import assistant_call, function_result, searchable_text, user_message

SEED = 20240601
VOCABULARY = 30_000
CLASSES = {"common": (0, 50), "mid": (50, 3_000), "rare": (3_000, VOCABULARY)}
CLASS_SHARE = (("common", 0.25), ("mid", 0.45), ("rare", 0.30))
_SYLLABLES = [c + v for c in "bdfghklmnprstvwz" for v in "aeiou"] + ["an", "el", "in", "or", "us", "ay"]


class Corpus:
    """Seeded pseudo-words with Zipf weights (rank r has weight 1/(r+1))."""

    def __init__(self, seed: int = SEED, size: int = VOCABULARY) -> None:
        self.rng = random.Random(seed)
        words: dict[str, None] = {}
        while len(words) < size:
            count = self.rng.choice((1, 2, 2, 2, 3, 3, 4))
            words["".join(self.rng.choice(_SYLLABLES) for _ in range(count))] = None
        self.words = list(words)
        self.cum_weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(size)))

    def text(self, mu: float, sigma: float, low: int, high: int) -> str:
        """Log-normally many words (median e**mu), clipped to [low, high]."""
        n = min(high, max(low, int(self.rng.lognormvariate(mu, sigma))))
        return " ".join(self.rng.choices(self.words, cum_weights=self.cum_weights, k=n)).capitalize() + "."

    def messages(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(role, searchable text, payload) in the agent's pattern: user, its call, the call's result."""
        while True:
            for message in (
                user_message(self.text(2.4, 0.6, 2, 80)),
                assistant_call(self.text(2.5, 0.4, 4, 40), "send_message", {"message": self.text(2.6, 0.6, 3, 90)}),
                function_result("send_message", True, None),
            ):
                yield message["role"], searchable_text(message), message

    def passages(self) -> Iterator[str]:
        while True:
            yield self.text(3.6, 0.7, 5, 300)

    def queries(self, count: int) -> list[tuple[str, str]]:
        """(class, query) pairs: 1-3 words from one frequency class each."""
        rng = random.Random(SEED + 1)
        names, shares = zip(*CLASS_SHARE, strict=True)
        out = []
        for _ in range(count):
            kind = rng.choices(names, weights=shares)[0]
            low, high = CLASSES[kind]
            words = [self.words[rng.randrange(low, high)] for _ in range(rng.choice((1, 1, 2, 3)))]
            out.append((kind, " ".join(words)))
        return out
