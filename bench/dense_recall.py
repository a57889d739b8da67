"""What the two-stage dense scan (``memagent/memory/vector_scan.py``) loses against scoring every vector, on real
e5 vectors: LoCoMo's turns stored and embedded as memagent does it, its questions as queries.

    .venv/bin/python -m bench.dense_recall [--data DIR] [--cache DIR]

Every conversation of ``--data`` is stored through memagent's own code (``locomo_store.store_conversation``) and
its rows embedded as the background worker embeds them (vectors cached by text in ``--cache``, shared with
``memory_quality``). The vectors of every conversation are then pooled per kind (messages with their turn before,
passages), as one agent's memory of ~2,800 rows of each, and each question of categories 1-4 is embedded as a
query. Reported per short-list size: the share of the exact top 10 and top 50 (by dot product over every row)
that the two-stage scan returns.

The short-list is given as a share of the rows, the way ``vector_scan.shortlist`` sizes it at scale (one row in
``SHORTLIST_SHARE`` above 40k rows): 1% of ~2,800 rows here is the share re-ranked at 100k or 1M rows. Random
vectors (``hybrid_scale``) are the worst case for codes; these are the vectors memagent searches."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import log, machine_info, md_table
from bench.locomo import Skipped, load_folder
from bench.locomo_store import store_conversation
from bench.memory_quality import DEFAULT_CACHE, DEV_DATA, bench_embedder
from memagent.memory import schema, vector_scan
from memagent.memory.vector_scan import VectorMatrix

SHARES = (0.005, 0.01, 0.02, 0.05, 0.1)
DEPTHS = (10, 50)


def pooled_vectors(folder: Path, cache: Path, work: Path) -> tuple[dict[str, list[bytes]], list[bytes]]:
    """Every row vector of every conversation, per kind, and every question's query vector."""
    import sqlalchemy as sa

    embedder = bench_embedder(cache)
    if embedder is None:
        raise SystemExit("dense_recall: needs the embeddings extra (pip install 'memagent[embeddings]')")
    skipped = Skipped()
    vectors: dict[str, list[bytes]] = {"message": [], "passage": []}
    queries: list[bytes] = []
    for number, conversation in enumerate(load_folder(folder, skipped)):
        log(f"{conversation.name}: storing and embedding")
        stored = store_conversation(work / f"{number}.db", conversation, skipped, embedder)
        try:
            e = schema.embeddings
            for row in stored.store._rows(sa.select(e.c.message_id, e.c.vector).order_by(e.c.id)):
                vectors["message" if row.message_id is not None else "passage"].append(bytes(row.vector))
        finally:
            stored.store.close()
        log(f"{conversation.name}: embedding {len(conversation.questions)} questions")
        queries += [embedder.query(question.text) for question in conversation.questions]
    return vectors, queries


def recall(vectors: list[bytes], queries: list[bytes], share: float | None) -> dict[int, float]:
    """Mean share of the exact top-k found by the two-stage scan with a short-list of ``share`` of the rows
    (None: every row, exact)."""
    import numpy as np

    matrix = VectorMatrix()
    matrix.append(list(range(len(vectors))), vectors)
    rows = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(len(vectors), -1)
    found = {k: 0.0 for k in DEPTHS}
    keep = vector_scan.shortlist
    size = max(1, round(len(vectors) * share)) if share is not None else len(vectors)
    vector_scan.shortlist = lambda _rows, _limit: size  # type: ignore[assignment]
    try:
        for query in queries:
            scores = rows @ np.frombuffer(query, dtype="<f4")
            exact = np.argsort(-scores, kind="stable")
            for k in DEPTHS:
                got = set(matrix.nearest(query, k))
                found[k] += len(got & set(exact[:k].tolist())) / k
    finally:
        vector_scan.shortlist = keep  # type: ignore[assignment]
    return {k: round(found[k] / len(queries), 3) for k in DEPTHS}


def report(vectors: dict[str, list[bytes]], queries: list[bytes]) -> str:
    rows: list[list[Any]] = []
    for kind, kept in vectors.items():
        for share in SHARES:
            found = recall(kept, queries, share)
            size = max(1, round(len(kept) * share))
            rows.append([kind, len(kept), f"{share:.1%} ({size})", *(found[k] for k in DEPTHS)])
    table = md_table(("rows", "n", "short-list", *(f"top {k} found" for k in DEPTHS)), rows)
    return f"{len(queries)} questions; machine: {machine_info()['CPU']}\n\n{table}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEV_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"row vectors kept here ({DEFAULT_CACHE})")
    args = parser.parse_args(argv)
    if not vector_scan.has_popcount():
        print("dense_recall: this numpy has no bitwise_count (numpy < 2): the scan is exact", flush=True)
    with tempfile.TemporaryDirectory(prefix="memagent-dense-recall-") as tmp:
        vectors, queries = pooled_vectors(args.data, args.cache, Path(tmp))
    print(report(vectors, queries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
