"""Real conversation text for ``bench/memory_scale.py``: LoCoMo turns, cycled to any number of rows, and the
LoCoMo questions as written (categories 1-4) as the query mix (``--corpus locomo``).

The synthetic corpus (``corpus.py``) tests word frequencies; this one tests what search is asked in practice:
questions whose stopwords ("what", "did") are in most rows and whose content words (a name, "adopt") are in a
few percent of them. The same interface as ``Corpus``: ``messages()``, ``passages()``, ``queries(count)``.
Cycling keeps each word's share of the rows as in the conversations, which is what a search's cost follows."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.locomo import Conversation, Skipped, load_folder
from bench.locomo_store import passage_text
from memagent.memory.dialect import query_terms
from memagent.messages import assistant_call, function_result, searchable_text, user_message
from memagent.text import clean_text

SEED = 20241202
COMMON_SHARE, RARE_SHARE = 0.05, 0.005
"""A question is "common" if one of its content words is in 5% of the turns or more, "rare" if all are in under
0.5%, "mid" otherwise (content words: not NLTK stopwords, which memagent drops)."""


class LocomoCorpus:
    def __init__(self, folder: Path) -> None:
        self.conversations: list[Conversation] = load_folder(folder, Skipped())
        if not self.conversations:
            raise SystemExit(f"no LoCoMo conversations in {folder}")
        self.turns = [
            (conversation, session, turn)
            for conversation in self.conversations
            for session, turn in conversation.turns
        ]
        docs = Counter(term for _, _, turn in self.turns for term in {t.lower() for t in query_terms(turn.said)})
        self.share = {term: count / len(self.turns) for term, count in docs.items()}

    def messages(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for conversation, _session, turn in itertools.cycle(self.turns):
            said = clean_text(turn.said)
            if turn.speaker == conversation.speaker_b:
                call = assistant_call(None, "send_message", {"message": said})
                for message in (call, function_result("send_message", True, None)):
                    yield message["role"], searchable_text(message), message
            else:
                yield "user", said, user_message(said)

    def passages(self) -> Iterator[str]:
        for _conversation, session, turn in itertools.cycle(self.turns):
            yield passage_text(session.day, turn.speaker, clean_text(turn.said))

    def word_class(self, question: str) -> str:
        from memagent.memory.stopwords import content_terms

        shares = [self.share.get(term.lower(), 0.0) for term in content_terms(query_terms(question))]
        top = max(shares, default=0.0)
        return "common" if top >= COMMON_SHARE else "rare" if top < RARE_SHARE else "mid"

    def queries(self, count: int) -> list[tuple[str, str]]:
        """(class, question) pairs, a seeded sample of the questions of categories 1-4, as written."""
        questions = [q.text for c in self.conversations for q in c.questions]
        picked = random.Random(SEED).sample(questions, min(count, len(questions)))
        return [(self.word_class(question), question) for question in picked]
