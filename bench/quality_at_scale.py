"""Retrieval quality when the memory is large: archival full-text search of each LoCoMo conversation stored after
``--filler`` passages of the other conversations' turns (the same agent, older), so the search's rank window is
full for the common words of most questions, as it is at scale.

    .venv/bin/python -m bench.quality_at_scale [--data DIR] [--filler 30000]

memory_quality measures recall on the conversations alone (a few hundred rows: the window never fills); this
measures what the window's ranking does to it (memagent/memory/search.py). The filler is real conversation text, so
the questions' words are as common in it as in the conversation. Reported: R@1/5/10 (the first evidence turn among
the first k passages of ``search_passages``, page size 10) and search latency p50 over the questions of
categories 1-4; full text only (no embeddings)."""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import percentile
from bench.locomo import Conversation, Skipped, load_folder
from bench.locomo_store import passage_text, store_passages
from bench.memory_quality import DEV_DATA
from memagent.memory.store import Store
from memagent.text import clean_text

DEPTHS = (1, 5, 10)
BATCH = 5_000


def filler_passages(conversations: Sequence[Conversation], left_out: Conversation) -> list[str]:
    return [
        passage_text(session.day, turn.speaker, clean_text(turn.said))
        for conversation in conversations
        if conversation is not left_out
        for session, turn in conversation.turns
    ]


def ask(
    path: Path, conversations: Sequence[Conversation], conversation: Conversation, filler: int
) -> list[tuple[int | None, float]]:
    """(rank of the first evidence passage or None, ms) per question, the conversation stored after the filler."""
    answers = []
    with Store(path) as store:
        with store.transaction() as tx:
            agent_id = tx.create_agent("scale", {}).id
        source = itertools.cycle(filler_passages(conversations, conversation))
        for done in range(0, filler, BATCH):
            with store.transaction() as tx:
                tx.add_passages(agent_id, list(itertools.islice(source, min(BATCH, filler - done))))
        turn_of = store_passages(store, agent_id, conversation, Skipped())
        for question in conversation.questions:
            start = time.perf_counter()
            found = store.search_passages(agent_id, question.text, page_size=max(DEPTHS))
            spent = (time.perf_counter() - start) * 1000
            ranks = (rank for rank, item in enumerate(found.items, 1) if turn_of.get(item.id) in question.evidence)
            answers.append((next(ranks, None), spent))
    return answers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEV_DATA)
    parser.add_argument("--filler", type=int, default=30_000, help="passages stored before each conversation")
    args = parser.parse_args(argv)
    conversations = load_folder(args.data, Skipped())
    answers = []
    with tempfile.TemporaryDirectory(prefix="memagent-quality-scale-") as tmp:
        for number, conversation in enumerate(conversations):
            answers += ask(Path(tmp) / f"{number}.db", conversations, conversation, args.filler)
    recall = {f"R@{k}": round(sum(r is not None and r <= k for r, _ in answers) / len(answers), 3) for k in DEPTHS}
    latency = [ms for _, ms in answers]
    print(
        f"{len(answers)} questions, {args.filler:,} filler passages before each conversation: {recall}, "
        f"p50 {percentile(latency, 50):.1f} ms, p95 {percentile(latency, 95):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
