"""The full-text search at scale (SQLite): only the newest ``RANK_WINDOW`` matches are ranked, and a term in more
rows than the window is left out of a query that has rarer terms (``search.ranked_terms``). The window is made
tiny here so a few rows show what a million would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memagent.memory import search
from memagent.memory.search import ranked_terms
from memagent.memory.store import Store

WINDOW = 4


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setattr(search, "RANK_WINDOW", WINDOW)
    s = Store.in_memory()
    yield s
    s.close()


def agent_id(store: Store, name: str) -> int:
    with store.transaction() as tx:
        return tx.create_agent(name, {}).id


def test_terms_in_more_rows_than_the_window_are_left_out_when_rarer_ones_exist() -> None:
    assert ranked_terms(["caroline", "lgbtq", "group"], [9000, 12, 3000], window=3000) == ["lgbtq", "group"]
    assert ranked_terms(["caroline", "said"], [9000, 4000], window=3000) == ["caroline", "said"]  # none is rarer
    assert ranked_terms(["one"], [10], window=3000) == ["one"]


def test_an_old_row_with_a_rare_word_is_found_past_a_flood_of_common_ones(store: Store) -> None:
    me = agent_id(store, "me")
    with store.transaction() as tx:
        old = tx.add_passage(me, "the adoption papers arrived, said Caroline")
        newer = [tx.add_passage(me, f"Caroline went out, day {i}") for i in range(12)]
    found = store.search_passages(me, "Caroline adoption", page_size=3)
    assert found.items[0].id == old
    # Without a rarer word the search ranks the newest matches only, and says there are more than it counted.
    common = store.search_passages(me, "Caroline went", page_size=3)
    assert {p.id for p in common.items} <= set(newer[-WINDOW:]) and len(common.items) == 3
    assert common.capped is True and common.total == WINDOW


def test_a_window_filled_by_another_agent_falls_back_to_every_match(store: Store) -> None:
    mine, busy = agent_id(store, "mine"), agent_id(store, "busy")
    with store.transaction() as tx:
        kept = [tx.add_message(mine, "user", f"my garden tomatoes {i}", {}) for i in range(3)]
        for i in range(20):  # newer matches of another agent fill the whole window
            tx.add_message(busy, "user", f"their garden tomatoes {i}", {})
    found = store.search_messages(mine, "garden tomatoes", page_size=5)
    assert sorted(m.id for m in found.items) == kept and found.total == 3


def test_paging_within_the_window_is_consistent(store: Store) -> None:
    me = agent_id(store, "me")
    with store.transaction() as tx:
        for i in range(10):
            tx.add_message(me, "user", f"needle {i}", {})
    pages = [store.search_messages(me, "needle", page=p, page_size=2) for p in range(3)]
    seen = [m.id for p in pages for m in p.items]
    assert len(seen) == len(set(seen)) == 4  # the window's four matches over two pages, none repeated after
    assert [len(p.items) for p in pages] == [2, 2, 0] and all(p.capped for p in pages)


def test_hybrid_search_ranks_full_text_within_the_window_and_falls_back_the_same_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fakes import FakeEmbedder

    from memagent.memory import hybrid

    monkeypatch.setattr(hybrid, "RANK_WINDOW", WINDOW)
    monkeypatch.setattr(search, "RANK_WINDOW", WINDOW)
    store = Store.in_memory()
    try:
        store.use_embedder(FakeEmbedder({}))
        mine, busy = agent_id(store, "mine"), agent_id(store, "busy")
        with store.transaction() as tx:
            kept = [tx.add_message(mine, "user", f"my garden tomatoes {i}", {}) for i in range(3)]
            for i in range(20):
                tx.add_message(busy, "user", f"their garden tomatoes {i}", {})
            old = tx.add_passage(busy, "the adoption papers arrived")
            newer = [tx.add_passage(busy, f"papers arrived, day {i}") for i in range(12)]
        found = store.search_messages(mine, "garden tomatoes", page_size=5)
        assert sorted(m.id for m in found.items) == kept  # another agent filled the window: every match
        rare = store.search_passages(busy, "adoption papers", page_size=3)
        assert rare.items[0].id == old  # "papers" is in more rows than the window: the rarer word ranks
        common = store.search_passages(busy, "papers arrived", page_size=3)
        assert {p.id for p in common.items} <= set(newer) and common.capped
    finally:
        store.close()


def test_a_full_window_is_ranked_by_the_terms_each_match_holds_then_newest_first(store: Store) -> None:
    """Not bm25, which weighs the rarer word more (and at a million rows cost most of a search): each word of the
    query a match holds counts the same, a word of the passage before half, then newest first."""
    me = agent_id(store, "me")
    with store.transaction() as tx:
        for i in range(8):
            tx.add_passage(me, f"garden day {i}")
        tomatoes = [tx.add_passage(me, f"tomatoes day {i}") for i in range(5)]  # both words above the window
        both = tx.add_passage(me, "garden tomatoes")
        newest = tx.add_passage(me, "garden newest")
    # The window: the newest four matches. Held: both 2 + 0.5 (its passage before: "tomatoes"); newest 1 + 2 x 0.5;
    # the last two tomatoes rows 1 + 0.5 each.
    found = store.search_passages(me, "garden tomatoes", page_size=4)
    assert [p.id for p in found.items] == [both, newest, tomatoes[-1], tomatoes[-2]] and found.capped is True
    later = store.search_passages(me, "garden tomatoes", page=1, page_size=2)
    assert [p.id for p in later.items] == [tomatoes[-1], tomatoes[-2]]


def test_a_full_window_reads_more_candidates_when_another_agents_rows_took_the_first(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    me, other = agent_id(store, "me"), agent_id(store, "other")
    monkeypatch.setattr(search, "candidates_to_read", lambda _rows: (1, WINDOW))
    with store.transaction() as tx:
        for i in range(6):
            tx.add_passage(me, f"garden day {i}")
        mine = [tx.add_passage(me, "garden mine"), tx.add_passage(me, "garden again")]
        tx.add_passage(other, "garden garden theirs")  # the newest match: the first candidate
    found = store.search_passages(me, "garden", page_size=2)
    assert [p.id for p in found.items] == mine[::-1]


def test_a_page_reads_more_candidates_when_another_agents_best_matches_took_the_first(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same below a full window, ranked by bm25."""
    me, other = agent_id(store, "me"), agent_id(store, "other")
    monkeypatch.setattr(search, "candidates_to_read", lambda _rows: (1, WINDOW))
    with store.transaction() as tx:
        mine = tx.add_passage(me, "garden mine")
        tx.add_passage(other, "garden garden garden theirs")  # the best bm25 match: the first candidate
    found = store.search_passages(me, "garden", page_size=2)
    assert [p.id for p in found.items] == [mine] and found.total == 1 and not found.capped
