"""Hybrid search at scale (SQLite): archival search latency with every row embedded, at 10k and 100k passages.

    .venv/bin/python -m bench.hybrid_scale [--sizes 10000,100000] [--queries 200]

Passages come from ``bench/corpus.py`` (Zipf pseudo-words, fixed seed) through ``Transaction.add_passages``. Their
vectors are random unit vectors of e5's 384 floats written through ``Transaction.add_embeddings`` (``Store.
embed_pending`` with an embedder that returns them): embedding 100k texts with e5 would take ~1.5 hours of CPU,
and the dense side's cost (reading the agent's vectors once, then one matrix product per search) does not depend
on what the vectors hold. Each query is 1-3 corpus words; its vector is random too, and the e5 query cost is
measured apart (``--e5``, real model, one thread): a search pays it once per question (cached for its pages).

Reported per size: p50/p95 of the dense ranking alone (``dialect.dense_search``), of a whole hybrid
``search_passages`` (full text + dense + fusion + fetching the page, query vector given), of full text alone, and
the first hybrid search (reads every vector into memory)."""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import log, percentile
from bench.corpus import Corpus
from memagent.memory.store import Store

DIMENSION = 384


class RandomEmbedder:
    """Random unit vectors (seeded): the cost of the dense side without the cost of a model."""

    model = "random-unit"
    dimension = DIMENSION

    def __init__(self, seed: int = 7) -> None:
        import numpy

        self.random = numpy.random.default_rng(seed)

    def _vectors(self, count: int) -> list[bytes]:
        values = self.random.standard_normal((count, DIMENSION), dtype="float32")
        values /= (values**2).sum(axis=1, keepdims=True) ** 0.5
        return [row.astype("<f4").tobytes() for row in values]

    def passages(self, texts: Sequence[str]) -> list[bytes]:
        return self._vectors(len(texts))

    def query(self, _text: str) -> bytes:
        return self._vectors(1)[0]


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 2), "p95": round(percentile(values, 95), 2)}


def measure_size(folder: Path, size: int, queries: list[str]) -> dict[str, Any]:
    corpus, embedder = Corpus(), RandomEmbedder()
    store = Store(folder / f"hybrid-{size}.db")
    try:
        with store.transaction() as tx:
            agent_id = tx.create_agent("scale", {}).id
        source = corpus.passages()
        for done in range(0, size, 5_000):
            with store.transaction() as tx:
                tx.add_passages(agent_id, list(itertools.islice(source, min(5_000, size - done))))
        started = time.perf_counter()
        store.embed_pending(embedder, batch=1_000)
        log(f"{size}: {size} vectors written in {time.perf_counter() - started:.1f} s")
        mark = len(CPU_MS)
        full_text = [_timed(lambda q=q: store.search_passages(agent_id, q)) for q in queries]
        cpu = {"full_text_cpu_ms": _cpu_since(mark)}
        store.use_embedder(embedder)
        first = _timed(lambda: store.search_passages(agent_id, queries[0]))
        mark = len(CPU_MS)
        hybrid = [_timed(lambda q=q: store.search_passages(agent_id, q)) for q in queries]
        cpu["hybrid_cpu_ms"] = _cpu_since(mark)
        vector = embedder.query("")
        mark = len(CPU_MS)
        dense = [
            _timed(lambda: store.dialect.dense_search(store._rows, "passage", agent_id, embedder.model, vector, 50))
            for _ in queries
        ]
        cpu["dense_cpu_ms"] = _cpu_since(mark)
    finally:
        store.close()
    return {
        "rows": size,
        "full_text_ms": _ms(full_text),
        "hybrid_ms": _ms(hybrid),
        "dense_ms": _ms(dense),
        "first_hybrid_ms": round(first, 1),
        **cpu,
    }


CPU_MS: list[float] = []
"""The CPU time of each timed call, beside its wall time: on a shared machine a niced process waits for a core."""


def _timed(call: Any) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    call()
    CPU_MS.append((time.process_time() - cpu) * 1000)
    return (time.perf_counter() - start) * 1000


def _cpu_since(mark: int) -> dict[str, float]:
    return _ms(CPU_MS[mark:])


def e5_query_ms(queries: list[str]) -> dict[str, float]:
    """Wall and CPU time of embedding a query with the real model (its cache bypassed: every query is new)."""
    from memagent.memory.embed import E5Embedder

    embedder = E5Embedder()
    embedder.query("warm up")
    mark = len(CPU_MS)
    wall = _ms([_timed(lambda q=q: embedder.query(f"{q} ?")) for q in queries[:50]])
    return {**wall, **{f"cpu_{key}": value for key, value in _cpu_since(mark).items()}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--e5", action="store_true", help="also time e5 query embedding (the embeddings extra)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    queries = [query for _cls, query in Corpus().queries(args.queries)]
    result: dict[str, Any] = {"sizes": []}
    with tempfile.TemporaryDirectory(prefix="memagent-hybrid-") as tmp:
        for size in (int(part) for part in args.sizes.split(",")):
            result["sizes"].append(measure_size(Path(tmp), size, queries))
            print(json.dumps(result["sizes"][-1]))
    if args.e5:
        result["e5_query_ms"] = e5_query_ms(queries)
        print(json.dumps({"e5_query_ms": result["e5_query_ms"]}))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
