"""bench/memory_quality.py: LoCoMo turns stored as the agent stores a chat, questions asked through the search
functions, recall@k scored, and the gaps of a data file counted instead of crashing the run.

The data is tests/data/locomo/tiny.json, a five-turn conversation written for these tests."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from fakes import Recorder, reply

from bench import memory_quality as mq
from bench.locomo import Skipped, load_folder, normalise_ids, parse_date
from bench.locomo_store import store_conversation

DATA = Path(__file__).resolve().parent.parent / "data" / "locomo"


@pytest.fixture
def tiny():
    skipped = Skipped()
    (conversation,) = load_folder(DATA, skipped)
    return conversation, skipped


def test_reading_normalises_ids_and_counts_what_it_cannot_use(tiny) -> None:
    conversation, skipped = tiny
    assert [q.evidence for q in conversation.questions][2:] == [{"D2:1"}, {"D1:3"}, {"D1:1", "D1:3"}]
    assert skipped.reasons == {
        "questions not in categories 1-4 (5 is adversarial)": 1,
        "questions with no known evidence (not asked)": 2,
        "evidence ids that name no turn (dropped)": 1,
        "evidence entries with no turn id in them (dropped)": 1,
        "sessions without a readable date (kept, undated)": 1,
        "turns with no text": 1,
        "turns without a dia_id (stored, can't be evidence)": 1,
    }
    assert normalise_ids(["D8:6; D9:17", "D:11:26", "D"]) == ["D8:6", "D9:17", "D11:26"]
    assert parse_date("1:56 pm on 8 May, 2023") == datetime(2023, 5, 8, 13, 56)
    assert parse_date("sometime in spring") is None


def test_chat_rows_are_the_rows_the_agent_writes(tiny, make_agent, tmp_path: Path) -> None:
    """The same exchange typed into a real Agent and stored by the benchmark gives the same rows (times aside)."""
    conversation, _ = tiny
    first, second = conversation.sessions[0].turns[:2]
    agent, _ = make_agent([reply(second.said, thoughts="")])
    agent.run_turn(first.said, Recorder())
    by_agent = agent.store.all_messages(agent.agent_id)[-3:]

    stored = store_conversation(tmp_path / "bench.db", conversation, Skipped())
    try:
        by_bench = stored.store.all_messages(stored.agent_id)[:3]
        passages = [p.text for p in stored.store.all_passages(stored.agent_id)]
    finally:
        stored.store.close()

    def untimed(text):
        if not text.startswith("{"):
            return text
        return json.dumps({k: v for k, v in json.loads(text).items() if k != "time"})

    def timeless(message):
        payload = {**message.payload, "content": untimed(message.payload["content"])}
        return message.role, untimed(message.text), payload

    assert [timeless(m) for m in by_bench] == [timeless(m) for m in by_agent]
    assert [m.role for m in by_bench] == ["user", "assistant", "function"]
    assert by_bench[0].created_at == datetime(2023, 5, 8, 13, 56).astimezone()
    assert "[shared a photo: a photo of a clay vase on a wheel]" in by_bench[1].text
    assert passages[0] == "(8 May 2023) Ann: Hi Bob! I adopted a puppy named Biscuit yesterday."
    assert passages[3] == "Bob: I finished my marathon training."  # session 2 has no date
    assert len(passages) == 5
    assert set(stored.turn_of["conversation_search"].values()) == {"D1:1", "D1:2", "D1:3", "D2:1"}


def test_questions_go_through_the_search_functions_and_find_their_turns() -> None:
    run = mq.measure(DATA)
    ranks = {(a.tool, a.question): a.rank for a in run.asked}
    for tool in mq.TOOLS:
        # each has a word that only its evidence turn holds ("wheel" only in the photo's caption)
        assert ranks[tool, "Which puppy did Ann adopt?"] == 1
        assert ranks[tool, "What did Bob make on the pottery wheel?"] == 1
    # recall indexes each turn with the one before it as context, so the reply after the evidence turn shares its
    # words (and is as short): the evidence is first or second there
    assert ranks["archival_memory_search", "When did Bob finish marathon training?"] == 1
    assert ranks["conversation_search", "When did Bob finish marathon training?"] in (1, 2)
    assert len(run.latency_ms["conversation_search"]) >= 5  # one call per question at least, each timed
    assert (run.conversations, run.turns, len(run.asked)) == (1, 5, 10)


def test_recall_at_k_counts_a_question_found_when_any_evidence_turn_is_in_the_first_k() -> None:
    asked = [mq.Asked("c", f"q{i}", "conversation_search", 4, rank) for i, rank in enumerate((1, 3, 7, None))]
    assert mq.recall(asked) == {"R@1": 0.25, "R@5": 0.5, "R@10": 0.75, "questions": 4}
    question = mq.Question("q", 1, frozenset({"D1:3", "D2:1"}))
    assert mq.first_evidence_rank(["D1:1", None, "D2:1", "D1:3"], question) == 3


def test_json_report_has_both_functions_by_category_and_latency(tmp_path: Path, capsys) -> None:
    out = tmp_path / "result.json"
    assert mq.main(["--data", str(DATA), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for tool in mq.TOOLS:
        assert set(result[tool]) >= {"R@1", "R@5", "R@10", "by_category"}
        assert result[tool]["R@1"] <= result[tool]["R@5"] <= result[tool]["R@10"]
        assert {k: v["questions"] for k, v in result[tool]["by_category"].items()} == {"1": 1, "2": 2, "3": 1, "4": 1}
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p95"]
    assert result["counts"]["skipped"]["questions with no known evidence (not asked)"] == 2
    printed = capsys.readouterr().out
    assert "archival_memory_search" in printed and "R@10" in printed


def test_the_published_shape_and_broken_files_are_read_too(tmp_path: Path) -> None:
    """locomo10.json is a list of samples with the turns under "conversation"; a broken file is counted."""
    flat = json.loads((DATA / "tiny.json").read_text())
    qa = flat.pop("qa")
    (tmp_path / "locomo10.json").write_text(json.dumps([{"sample_id": "x", "conversation": flat, "qa": qa}]))
    (tmp_path / "broken.json").write_text("{not json")
    skipped = Skipped()
    (conversation,) = load_folder(tmp_path, skipped)
    assert len(conversation.questions) == 5 and conversation.speaker_b == "Bob"
    assert skipped.reasons["files that are not readable JSON"] == 1


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_a_bad_data_folder_is_one_line(tmp_path: Path, capsys, folder: str) -> None:
    (tmp_path / "empty").mkdir()
    assert mq.main(["--data", str(tmp_path / folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--data" in err and "LoCoMo" in err


def test_a_folder_of_unusable_files_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "a.json").write_text('{"speaker_a": "Ann", "session_1": []}')
    assert mq.main(["--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no usable LoCoMo conversation" in err


def test_prototype_query_processing_and_fusion() -> None:
    """bench/memory_variants.py's pieces: stopwords go as FTS5 splits words; RRF favours turns both lists rank."""
    from bench.retrieval_parts import fuse
    from bench.stopwords import NLTK_ENGLISH, drop_stopwords

    assert len(NLTK_ENGLISH) == 179
    assert drop_stopwords("When did Caroline's sister go to the support group?") == "Caroline sister go support group"
    assert drop_stopwords("What is it?") == "What is it?"  # nothing would be left: searched as asked
    assert fuse(["D1:1", "D1:2", None], ["D1:2", "D1:3"]) == ["D1:2", "D1:1", "D1:3"]


def test_a_hybrid_run_embeds_the_rows_and_reports_full_text_beside_it(tmp_path: Path) -> None:
    from fakes import FakeEmbedder

    embedder = FakeEmbedder()
    result = mq.summary(mq.measure(DATA, embedder=embedder))
    assert result["search"] == "hybrid"
    assert len(embedder.embedded) == 10  # every turn: 5 chat rows (function results are not embedded), 5 passages
    assert embedder.queries  # the questions were embedded: the dense side was asked
    for tool in mq.TOOLS:
        assert result["full_text_only"][tool]["questions"] == result[tool]["questions"] == 5
    section = mq.build_section(result, "cmd")
    assert "Hybrid search" in section.body and "Full text only" in section.body
