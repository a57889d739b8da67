"""Memory retrieval quality on LoCoMo: does a search with the question as asked bring back the turn that answers it?

    python -m bench.memory_quality --data DIR [--json FILE]

DIR holds LoCoMo-format conversations (``*.json``; the dev split is ``../shared/data/locomo-dev/``). Each
conversation gets its own SQLite file in a temporary folder (``memagent.memory.store.Store``) and one agent, and
every turn is stored twice, through memagent's own code paths:

- **as the chat, for recall** (``conversation_search``). The first speaker (``speaker_a``) is the user and the
  second (``speaker_b``) the agent: a user turn is a ``user_message`` envelope whose searchable text is what was
  typed (``Agent.run_turn``); an agent turn is a ``send_message`` call (no inner thoughts: LoCoMo has none)
  followed by its "OK" function result, as ``Agent.step`` writes them. Rows go through ``Transaction.add_message``
  with the text ``Agent._add`` gives them, and ``created_at`` is the session's date (one second per turn). Why this
  way round: both roles are searched alike (``RECALL_ROLES``), so the mapping changes only which rows are JSON
  envelopes; ``speaker_a`` opens most sessions, as a user opens a chat. A turn by neither speaker is a user turn.
- **as archival passages** ``(8 May 2023) Speaker: text``, written by calling the ``archival_memory_insert``
  function itself (what the model calls), so they go where and how that tool puts them. Undated sessions'
  passages have no date prefix.

A photo a turn shared is part of its text (``[shared a photo: caption]``): the caption is often the evidence.

Then every question of categories 1-4 is asked by calling the ``conversation_search`` and ``archival_memory_search``
functions from ``builtin_functions()`` with ``query`` = the question as written, page 0 then page 1 (as a model
pages), on a FunctionContext built like the agent's (``AgentMemory``, inside a store transaction as in a step).
The rows each call's context returned are mapped back to turn ids: recall@k counts a question as found when any
of its evidence turns is among the first k rows. Latency is the wall time of each function call (page 0 and 1).
Whatever makes search better (query processing, indexing, hybrid ranking) is measured here without a change,
as long as the functions keep their names and return pages of rows with ids.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import ROOT, Section, Timer, log, machine_info, percentile
from bench.locomo import CATEGORIES, Conversation, Question, Skipped, load_folder
from bench.locomo_store import EMBED_BATCH, FUNCTIONS, CachedEmbedder, Stored, function_context, store_conversation
from bench.memory_quality_report import DEPTHS, TOOLS, build_section, console_report
from memagent.functions.registry import FunctionFailed
from memagent.memory.embed import Embedder, default_embedder
from memagent.memory.hybrid import Fusion

DEV_DATA = ROOT.parent / "shared" / "data" / "locomo-dev"


# -- asking as the model would -----------------------------------------------------------------------------------


class RecordingContext:
    """Passes everything to the real FunctionContext and keeps the last page of rows one of its methods returned:
    the rows behind the text the function gives the model."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.last_page: Any = None

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if isinstance(getattr(result, "items", None), list):
                self.last_page = result
            return result

        return recorded


@dataclass
class Asked:
    """One question asked of one function: where its first evidence turn came (None: not in the first pages)."""

    conversation: str
    question: str
    tool: str
    category: int
    rank: int | None


@dataclass
class Run:
    asked: list[Asked] = field(default_factory=list)
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: {tool: [] for tool in TOOLS})
    failed_calls: int = 0
    conversations: int = 0
    turns: int = 0
    seconds: float = 0.0
    skipped: Skipped = field(default_factory=Skipped)
    search: str = "full text"
    baseline: Run | None = None  # hybrid runs: the same questions, full text only
    embed_seconds: float = 0.0


def ranked_rows(tool: str, context: RecordingContext, query: str, depth: int, run: Run) -> list[int]:
    """Row ids the function returns for ``query``, best first, paging until ``depth`` rows or the last page."""
    function = FUNCTIONS.get(tool)
    assert function is not None
    ids: list[int] = []
    page = 0
    while len(ids) < depth:
        context.last_page = None
        start = time.perf_counter()
        try:
            function(context, query=query, page=page)
        except FunctionFailed:
            run.failed_calls += 1
        run.latency_ms[tool].append((time.perf_counter() - start) * 1000)
        result = context.last_page
        if result is None or not result.items:
            break
        ids += [item.id for item in result.items]
        page += 1
        if page >= getattr(result, "num_pages", page + 1):
            break
    return ids[:depth]


def first_evidence_rank(dia_ids: Sequence[str | None], question: Question) -> int | None:
    return next((rank for rank, dia_id in enumerate(dia_ids, 1) if dia_id in question.evidence), None)


def ask_all(stored: Stored, conversation: Conversation, run: Run) -> None:
    for question in conversation.questions:
        with stored.store.transaction() as tx:  # a step's functions run inside its transaction
            context = RecordingContext(function_context(stored.store, stored.agent_id, tx))
            for tool in TOOLS:
                rows = ranked_rows(tool, context, question.text, max(DEPTHS), run)
                dia_ids = [stored.turn_of[tool].get(row) for row in rows]
                rank = first_evidence_rank(dia_ids, question)
                run.asked.append(Asked(conversation.name, question.text, tool, question.category, rank))


def measure(
    folder: Path, work_dir: Path | None = None, embedder: Embedder | None = None, fusion: Fusion | None = None
) -> Run:
    """Every question asked of every conversation; with an ``embedder``, search is hybrid (``fusion``) and
    ``baseline`` holds the same questions asked with full text only."""
    run = Run(search="full text" if embedder is None else "hybrid")
    if embedder is not None:
        run.baseline = Run()
    started = time.perf_counter()
    conversations = load_folder(folder, run.skipped)
    with tempfile.TemporaryDirectory(prefix="memagent-locomo-", dir=work_dir) as tmp:
        for number, conversation in enumerate(conversations):
            log(f"{conversation.name}: storing {sum(1 for _ in conversation.turns)} turns")
            stored = store_conversation(Path(tmp) / f"{number}.db", conversation, run.skipped)
            try:
                if embedder is not None and run.baseline is not None:
                    log(f"{conversation.name}: asking {len(conversation.questions)} questions, full text only")
                    ask_all(stored, conversation, run.baseline)
                    embed_started = time.perf_counter()
                    log(f"{conversation.name}: embedding {stored.store.count_unembedded(embedder.model)} rows")
                    stored.store.embed_pending(embedder, batch=EMBED_BATCH)  # as the background worker does
                    run.embed_seconds += time.perf_counter() - embed_started
                    stored.store.use_embedder(embedder, fusion)
                log(f"{conversation.name}: asking {len(conversation.questions)} questions ({run.search})")
                ask_all(stored, conversation, run)
            finally:
                stored.store.close()
            run.conversations += 1
            run.turns += sum(1 for _ in conversation.turns)
    run.seconds = time.perf_counter() - started
    return run


# -- results -----------------------------------------------------------------------------------------------------


def recall(asked: Sequence[Asked]) -> dict[str, Any]:
    """R@1/5/10 of these questions (a share of them, 0 when there are none) and how many there were."""
    found = {k: sum(a.rank is not None and a.rank <= k for a in asked) for k in DEPTHS}
    return {**{f"R@{k}": _share(found[k], len(asked)) for k in DEPTHS}, "questions": len(asked)}


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _latency(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "calls": 0}
    return {"p50": round(percentile(values, 50), 3), "p95": round(percentile(values, 95), 3), "calls": len(values)}


def summary(run: Run) -> dict[str, Any]:
    """What ``--json`` writes: the search memagent does (hybrid with the embeddings extra), and for a hybrid run
    the same numbers with full text only under ``full_text_only``."""
    result: dict[str, Any] = {"search": run.search}
    if run.baseline is not None:
        result["full_text_only"] = _recall_and_latency(run.baseline)
        result["embed_seconds"] = round(run.embed_seconds, 1)
    result.update(_recall_and_latency(run))
    result["counts"] = {
        "conversations": run.conversations,
        "turns": run.turns,
        "questions": len(run.asked) // len(TOOLS),
        "failed_calls": run.failed_calls + (run.baseline.failed_calls if run.baseline else 0),
        "skipped": dict(sorted(run.skipped.reasons.items())),
    }
    result["seconds"] = round(run.seconds, 1)
    return result


def _recall_and_latency(run: Run) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for tool in TOOLS:
        mine = [a for a in run.asked if a.tool == tool]
        by_category = {
            str(number): {"name": name, **recall([a for a in mine if a.category == number])}
            for number, name in CATEGORIES.items()
        }
        names = dict.fromkeys(a.conversation for a in mine)
        by_conversation = {name: recall([a for a in mine if a.conversation == name]) for name in names}
        result[tool] = {**recall(mine), "by_category": by_category, "by_conversation": by_conversation}
    every = [ms for tool in TOOLS for ms in run.latency_ms[tool]]
    result["latency_ms"] = {**_latency(every), **{tool: _latency(run.latency_ms[tool]) for tool in TOOLS}}
    return result


DEFAULT_CACHE = Path(tempfile.gettempdir()) / "memagent-e5-rows"


def bench_embedder(cache: Path | None = DEFAULT_CACHE) -> Embedder | None:
    """memagent's embedder (None without the extra), its row vectors cached on disk in ``cache``."""
    embedder = default_embedder()
    if embedder is None or cache is None:
        return embedder
    return CachedEmbedder(embedder, cache)


def run(folder: Path = DEV_DATA, json_path: Path | None = None) -> Section:
    """For ``bench.run_all``: measure (hybrid when the embeddings extra is installed, and full text only),
    optionally keep the JSON, and report as a Section."""
    with Timer() as timer:
        result = summary(measure(folder, embedder=bench_embedder()))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    shown = folder.relative_to(ROOT.parent) if folder.is_relative_to(ROOT.parent) else folder
    return timer.stamp(build_section(result, f".venv/bin/python -m bench.memory_quality --data ../{shown}"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEV_DATA, help=f"folder of LoCoMo .json files ({DEV_DATA})")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here as JSON")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary databases go")
    parser.add_argument("--full-text-only", action="store_true", help="no embeddings, even with the extra installed")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"row vectors kept here ({DEFAULT_CACHE})")
    defaults = Fusion()
    parser.add_argument("--depth", type=int, default=defaults.depth, help="fusion: rows of each ranking")
    parser.add_argument("--k", type=float, default=defaults.k, help="fusion: reciprocal-rank constant")
    parser.add_argument("--dense-weight", type=float, default=defaults.dense_weight, help="fusion: dense weight")
    args = parser.parse_args(argv)
    problem = _check_arguments(args)
    if problem:
        print(f"memory_quality: {problem}", file=sys.stderr)
        return 2
    embedder = None if args.full_text_only else bench_embedder(args.cache)
    if embedder is None and not args.full_text_only:
        print("memory_quality: the embeddings extra is not installed: full text only", file=sys.stderr)
    fusion = Fusion(depth=args.depth, k=args.k, dense_weight=args.dense_weight)
    run_data = measure(args.data, args.dir, embedder, fusion)
    if not run_data.conversations:
        print(
            f"memory_quality: no usable LoCoMo conversation in {args.data}; "
            f"check its files ({_skipped_text(run_data)})",
            file=sys.stderr,
        )
        return 2
    result = summary(run_data)
    print(console_report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    print(f"machine: {machine_info()['CPU']}")
    return 0


def _skipped_text(run_data: Run) -> str:
    return "; ".join(f"{n} {reason}" for reason, n in sorted(run_data.skipped.reasons.items())) or "no .json files"


def _check_arguments(args: argparse.Namespace) -> str | None:
    if not args.data.is_dir():
        return f"--data {args.data} is not a folder; give the folder that holds the LoCoMo .json files"
    if not any(args.data.glob("*.json")):
        return f"--data {args.data} holds no .json files; give the folder that holds the LoCoMo .json files"
    if args.json is not None and not args.json.parent.is_dir():
        return f"--json {args.json}: its folder does not exist; create it or choose another path"
    if args.dir is not None and not args.dir.is_dir():
        return f"--dir {args.dir} is not a folder; create it or leave --dir out"
    return None


if __name__ == "__main__":
    sys.exit(main())
