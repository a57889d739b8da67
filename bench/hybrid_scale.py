"""Hybrid search at scale (SQLite): archival search latency with every row embedded.

    .venv/bin/python -m bench.hybrid_scale [--sizes 100000] [--queries 100] [--no-e5]

Passages come from ``bench/corpus.py`` (Zipf pseudo-words, fixed seed) through ``Transaction.add_passages``. Their
vectors are random unit vectors of e5's 384 floats written through ``Store.embed_pending`` with an embedder that
returns them: embedding 100k texts with e5 would take ~1.5 hours of CPU, and the dense side's cost (reading the
agent's vectors once, then one matrix product per search) does not depend on what the vectors hold. Each query is
1-3 corpus words.

Reported per size: p50/p95 (wall and CPU) of full text alone, of the dense ranking alone
(``dialect.dense_search``), of a whole hybrid ``search_passages`` with a random query vector (the search without
the model), and of a whole hybrid search with the query embedded by the real e5 model (the embeddings extra; every
query new to its cache), both as memagent runs it (the embedding on its own thread while full text runs:
``hybrid.embed_query_meanwhile``) and one after the other, in the same process; plus the first hybrid search
(reads every vector into memory) and e5's query embedding alone."""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from bench.common import Section, Target, Timer, log, md_table, percentile
from bench.corpus import Corpus
from memagent.memory import hybrid
from memagent.memory.embed import Embedder
from memagent.memory.store import Store

DIMENSION = 384
TARGETS_MS = {100_000: 20.0, 1_000_000: 50.0}
"""The issue's hybrid search p50 per size (query embedding included)."""


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


class E5Queries:
    """The stored vectors' model name with the real e5 model's query vectors: a hybrid search as a user's costs,
    over random row vectors. Every query is new to e5's cache (a number appended)."""

    def __init__(self, rows: RandomEmbedder) -> None:
        from memagent.memory.embed import E5Embedder

        self.model, self.dimension, self.e5, self.asked = rows.model, rows.dimension, E5Embedder(), 0
        self.e5.query("warm up")

    def passages(self, texts: Sequence[str]) -> list[bytes]:
        raise AssertionError("rows are embedded by RandomEmbedder")

    def query(self, text: str) -> bytes:
        self.asked += 1
        return self.e5.query(f"{text} {self.asked}")


def _one_after_the_other(embedder: Embedder, query: str) -> Future[bytes]:
    """``hybrid.embed_query_meanwhile`` as it was: the query embedded before full text runs, on the same thread."""
    done: Future[bytes] = Future()
    done.set_result(embedder.query(query))
    return done


def _build(store: Store, size: int, embedder: RandomEmbedder) -> int:
    """The agent "scale" with ``size`` passages, every one embedded: made here, or found whole from a run before
    (``--keep``: building 1M rows takes ~15 minutes)."""
    found = [agent for agent in store.list_agents() if agent.name == "scale"]
    if found and store.count_passages(found[0].id) == size and store.count_unembedded(embedder.model) == 0:
        log(f"{size}: reusing {store.path}")
        return found[0].id
    if found:
        with store.transaction() as tx:
            tx.delete_agent("scale")
    corpus = Corpus()
    with store.transaction() as tx:
        agent_id = tx.create_agent("scale", {}).id
    source = corpus.passages()
    for done in range(0, size, 5_000):
        with store.transaction() as tx:
            tx.add_passages(agent_id, list(itertools.islice(source, min(5_000, size - done))))
    started = time.perf_counter()
    store.embed_pending(embedder, batch=1_000)
    log(f"{size}: {size} vectors written in {time.perf_counter() - started:.1f} s")
    return agent_id


def _series(name: str, calls: list[Any]) -> dict[str, dict[str, float]]:
    mark = len(CPU_MS)
    wall = [_timed(call) for call in calls]
    return {name: {**_ms(wall), **{f"cpu_{key}": value for key, value in _cpu_since(mark).items()}}}


def measure_size(folder: Path, size: int, queries: list[str], e5: bool) -> dict[str, Any]:
    embedder = RandomEmbedder()
    store = Store(folder / f"hybrid-{size}.db")
    try:
        agent_id = _build(store, size, embedder)
        search = store.search_passages
        result: dict[str, Any] = {"rows": size}
        result.update(_series("full_text", [lambda q=q: search(agent_id, q) for q in queries]))
        store.use_embedder(embedder)
        result["first_hybrid_ms"] = round(_timed(lambda: search(agent_id, queries[0])), 1)
        result.update(_series("hybrid_no_model", [lambda q=q: search(agent_id, q) for q in queries]))
        vector, dense = embedder.query(""), store.dialect.dense_search
        ranked = [lambda: dense(store._rows, "passage", agent_id, embedder.model, vector, 50)] * len(queries)
        result.update(_series("dense", ranked))
        if e5:
            e5_queries = E5Queries(embedder)
            store.use_embedder(e5_queries)
            result.update(_series("hybrid_e5", [lambda q=q: search(agent_id, q) for q in queries]))
            meanwhile, hybrid.embed_query_meanwhile = hybrid.embed_query_meanwhile, _one_after_the_other
            try:
                result.update(_series("hybrid_e5_sequential", [lambda q=q: search(agent_id, q) for q in queries]))
            finally:
                hybrid.embed_query_meanwhile = meanwhile
            result.update(_series("e5_query", [lambda q=q: e5_queries.query(q) for q in queries]))
    finally:
        store.close()
    return result


CPU_MS: list[float] = []
"""The CPU time of each timed call, beside its wall time: on a shared machine a niced process waits for a core."""


def _timed(call: Any) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    call()
    CPU_MS.append((time.process_time() - cpu) * 1000)
    return (time.perf_counter() - start) * 1000


def _cpu_since(mark: int) -> dict[str, float]:
    return _ms(CPU_MS[mark:])


SERIES = (
    ("full_text", "full text"),
    ("dense", "dense ranking"),
    ("hybrid_no_model", "hybrid, query vector given"),
    ("e5_query", "e5 query embedding alone"),
    ("hybrid_e5_sequential", "hybrid with e5, embedding then full text"),
    ("hybrid_e5", "hybrid with e5 (memagent: embedding meanwhile)"),
)


def _cell(series: dict[str, float] | None) -> str:
    if series is None:
        return "-"
    return f"{series['p50']:.1f} / {series['p95']:.1f} ({series['cpu_p50']:.1f})"


def build_section(sizes: list[dict[str, Any]], command: str, n_queries: int) -> Section:
    rows = [
        [f"{s['rows']:,}", *(_cell(s.get(key)) for key, _ in SERIES), f"{s['first_hybrid_ms']:,.0f}"] for s in sizes
    ]
    body = [
        f"{n_queries} queries of 1-3 corpus words against one agent's archival passages, every passage embedded "
        "(random unit vectors: the dense side's cost does not depend on what they hold); the e5 columns embed each "
        "query with the real model (one thread). p50 / p95 ms wall (CPU p50 ms); the first hybrid search of a "
        "process reads every vector into memory.",
        "",
        md_table(("rows", *(title for _, title in SERIES), "first hybrid ms"), rows),
    ]
    targets = []
    for rows_goal, goal in TARGETS_MS.items():
        measured = next((s for s in sizes if s["rows"] == rows_goal and "hybrid_e5" in s), None)
        name = f"hybrid search p50 at {rows_goal:,} rows, e5 query included"
        if measured is None:
            targets.append(Target(name, f"<= {goal:g} ms", "not measured", None, "not run at this size"))
            continue
        p50 = measured["hybrid_e5"]["p50"]
        why = (
            f"e5 query alone {measured['e5_query']['p50']:.1f} ms, dense ranking {measured['dense']['p50']:.1f} ms, "
            f"full text {measured['full_text']['p50']:.1f} ms (p50 wall)"
        )
        targets.append(Target(name, f"<= {goal:g} ms", f"{p50:.1f} ms", p50 <= goal, why))
    section = Section("hybrid_scale", "Hybrid search at scale", command, targets=targets, body="\n".join(body))
    section.summary = [
        f"hybrid p50 at {s['rows']:,} rows: {s['hybrid_e5']['p50']:.1f} ms with e5 "
        f"({s['hybrid_e5_sequential']['p50']:.1f} ms one after the other), {s['hybrid_no_model']['p50']:.1f} ms without"
        for s in sizes if "hybrid_e5" in s
    ]
    return section


def run(
    sizes: Sequence[int] = (100_000,), n_queries: int = 100, e5: bool = True, folder: Path | None = None,
    keep: Path | None = None,
) -> Section:
    """``keep``: a folder whose databases are kept and reused by the next run (instead of a temporary one)."""
    queries = [query for _cls, query in Corpus().queries(n_queries)]
    measured = []
    with Timer() as timer, tempfile.TemporaryDirectory(prefix="memagent-hybrid-", dir=folder) as tmp:
        for size in sizes:
            measured.append(measure_size(keep or Path(tmp), size, queries, e5))
            log(json.dumps(measured[-1]))
    command = (
        f".venv/bin/python -m bench.hybrid_scale --sizes {','.join(map(str, sizes))} --queries {n_queries}"
        + ("" if e5 else " --no-e5")
    )
    return timer.stamp(build_section(measured, command, n_queries))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--no-e5", action="store_true", help="leave out the real e5 model (no embeddings extra)")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary database goes")
    parser.add_argument("--keep", type=Path, default=None, help="keep the databases here, reuse them")
    args = parser.parse_args(argv)
    sizes = [int(part) for part in args.sizes.split(",")]
    section = run(sizes, args.queries, not args.no_e5, args.dir, args.keep)
    print(section.body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
