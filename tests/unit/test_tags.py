"""Archival tags and filtered searches (issue 18, item 4): tags stored normalised in their own table, searches
narrowed by tags, dates and role inside their SQL on both stores, the functions' errors the model can act on, the
two forms of each function (the default preset's small one), the migration and the export round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes import call, reply

from memagent.errors import ConfigError, UserError
from memagent.functions.memory import archival_memory_search, builtin_functions, conversation_search
from memagent.functions.registry import FunctionFailed
from memagent.memory.export import VERSION, export_agent, import_agent
from memagent.memory.filters import SearchFilter
from memagent.memory.migrations import LATEST_VERSION, MIGRATIONS, PASSAGE_TAGS_SCHEMA
from memagent.memory.store import Store
from memagent.memory.tags import MAX_TAG_CHARS, MAX_TAGS, TagError, normalise_tags

FILTER_FORMS = {
    "conversation_search": ("conversation_search+filters", {"role", "start_date", "end_date"}),
    "archival_memory_insert": ("archival_memory_insert+tags", {"tags"}),
    "archival_memory_search": ("archival_memory_search+filters", {"tags", "start_date", "end_date"}),
}


def results(events):
    return [(e.text, e.data["status"], e.data["message"]) for e in events.of("function_return")]


def noon(days_ago: int) -> datetime:
    return datetime.now().astimezone().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)


def day(days_ago: int) -> str:
    return noon(days_ago).strftime("%Y-%m-%d")


# ---------------------------------------------------------------------------------------- tags


def test_tags_are_trimmed_lower_cased_made_unique_and_sorted() -> None:
    assert normalise_tags(["  Travel ", "family", "TRAVEL", "New   York"]) == ("family", "new york", "travel")
    assert normalise_tags(None) == normalise_tags([]) == ()
    assert normalise_tags("Solo") == ("solo",)  # one tag written without its list


@pytest.mark.parametrize(("tags", "message"), [
    (["ok", "  "], r"^tags\[1\] is empty: leave it out or write a word\.$"),
    (["x" * (MAX_TAG_CHARS + 1)], rf"^tags\[0\] is {MAX_TAG_CHARS + 1} characters long; a tag is at most "),
    ([f"t{i}" for i in range(MAX_TAGS + 1)], rf"^tags has {MAX_TAGS + 1} tags; at most {MAX_TAGS} are allowed"),
    (["ok", 3], r"^tags\[1\] is not text"),
])
def test_bad_tags_are_one_line_saying_what_to_change(tags, message) -> None:
    with pytest.raises(TagError, match=message):
        normalise_tags(tags)


def test_the_same_tag_many_times_counts_once() -> None:
    assert normalise_tags(["a"] * (MAX_TAGS * 2)) == ("a",)


# ----------------------------------------------------------------------------------- the store


def _agent(store: Store, name: str = "a") -> int:
    with store.transaction() as tx:
        return tx.create_agent(name, {}).id


def test_tags_are_stored_with_their_passage_and_go_with_it(database: str) -> None:
    with Store(database) as store:
        agent_id = _agent(store)
        with store.transaction() as tx:
            tagged = tx.add_passage(agent_id, "Ann's boat is the Petrel", tags=[" Boats", "ann", "boats"])
            plain = tx.add_passage(agent_id, "Ann lives in Lisbon")
        assert [(p.id, p.tags) for p in store.all_passages(agent_id)] == [(tagged, ("ann", "boats")), (plain, ())]
        assert [p.tags for p in store.search_passages(agent_id, "Petrel").items] == [("ann", "boats"), ()]  # by context
        assert [p.tags for p in store.list_passages(agent_id, 10)] == [("ann", "boats"), ()]
        with pytest.raises(TagError), store.transaction() as tx:
            tx.add_passage(agent_id, "never stored", tags=[""])
        assert store.count_passages(agent_id) == 2  # the passage went with its bad tags
        with store.transaction() as tx:
            tx.delete_agent("a")
        import sqlalchemy as sa

        from memagent.memory import schema

        assert store._rows(sa.select(sa.func.count()).select_from(schema.passage_tags))[0][0] == 0


def test_archival_search_filtered_by_tags_and_dates_on_both_stores(database: str) -> None:
    with Store(database) as store:
        agent_id, other = _agent(store), _agent(store, "b")
        with store.transaction() as tx:
            tx.add_passage(agent_id, "sailing trip to Porto", noon(10), ["travel"])
            tx.add_passage(agent_id, "sailing lessons with Ann", noon(5), ["ann", "hobby"])
            tx.add_passage(agent_id, "sailing club dues paid", noon(1), ["money"])
            tx.add_passage(agent_id, "sailing is fun", noon(0))
            tx.add_passage(other, "sailing with the other agent", noon(5), ["ann"])

        def texts(query: str = "sailing", **where: object) -> list[str]:
            found = store.search_passages(agent_id, query, filters=SearchFilter(**where))  # type: ignore[arg-type]
            assert found.total == len(found.items)
            return sorted(p.text for p in found.items)

        assert len(texts()) == 4
        assert texts(tags=("ann", "travel")) == ["sailing lessons with Ann", "sailing trip to Porto"]  # ANY tag
        assert texts(tags=("nothing",)) == []
        five_ago = noon(5).date()
        assert texts(start=five_ago) == ["sailing club dues paid", "sailing is fun", "sailing lessons with Ann"]
        assert texts(end=five_ago) == ["sailing lessons with Ann", "sailing trip to Porto"]  # the end day included
        assert texts(start=five_ago, end=five_ago, tags=("hobby", "money")) == ["sailing lessons with Ann"]
        # The same filters hold where a query has no indexable term (a substring match) and for no query at all.
        assert texts("", tags=("money",)) == ["sailing club dues paid"]
        assert texts("🦑", tags=("money",)) == []
        assert texts("the", start=noon(1).date()) == []  # stopwords only: the fallback path on PostgreSQL


def test_a_filtered_count_is_capped_on_what_the_filter_lets_through(database: str) -> None:
    from memagent.memory.search import COUNT_PAGES

    many = COUNT_PAGES * 5 + 3
    with Store(database) as store:
        agent_id = _agent(store)
        with store.transaction() as tx:
            for i in range(many):
                tx.add_passage(agent_id, f"kraken number {i}", tags=["sea"] if i % 2 else None)
        everything = store.search_passages(agent_id, "kraken")
        assert everything.capped and everything.total == COUNT_PAGES * 5
        tagged = store.search_passages(agent_id, "kraken", page_size=100, filters=SearchFilter(tags=("sea",)))
        assert (tagged.total, tagged.capped, len(tagged.items)) == (many // 2, False, many // 2)
        assert all(p.tags == ("sea",) for p in tagged.items)


def test_conversation_search_filtered_by_role_and_dates_on_both_stores(database: str) -> None:
    with Store(database) as store:
        agent_id = _agent(store)
        with store.transaction() as tx:
            tx.add_message(agent_id, "user", "my kayak is red", {}, noon(3))
            tx.add_message(agent_id, "assistant", "a red kayak, nice", {}, noon(3))
            tx.add_message(agent_id, "user", "the kayak sank", {}, noon(0))

        def texts(**where: object) -> list[str]:
            found = store.search_messages(agent_id, "kayak", filters=SearchFilter(**where))  # type: ignore[arg-type]
            assert found.total == len(found.items)
            return sorted(m.text for m in found.items)

        assert texts(roles=("user",)) == ["my kayak is red", "the kayak sank"]
        assert texts(roles=("assistant",), end=noon(1).date()) == ["a red kayak, nice"]
        assert texts(start=noon(0).date()) == ["the kayak sank"]
        assert texts(roles=("user",), start=noon(2).date(), end=noon(1).date()) == []
        # ``roles=`` of the older signature still works, and replaces the filter's roles.
        assert store.search_messages(agent_id, "kayak", roles=["assistant"]).total == 1


def test_a_database_at_the_previous_version_upgrades_and_takes_tags(database: str) -> None:
    with Store(database, migrations=MIGRATIONS[: PASSAGE_TAGS_SCHEMA - 1]) as old:
        agent_id = _agent(old)
        with old.transaction() as tx:
            kept = tx.add_passage(agent_id, "written before tags existed")
        assert old.schema_version == PASSAGE_TAGS_SCHEMA - 1
    with Store(database) as store:
        assert store.schema_version == LATEST_VERSION >= PASSAGE_TAGS_SCHEMA
        assert [(p.id, p.tags) for p in store.all_passages(agent_id)] == [(kept, ())]
        with store.transaction() as tx:
            tx.add_passage(agent_id, "written after", tags=["new"])
        found = store.search_passages(agent_id, "written", filters=SearchFilter(tags=("new",)))
        assert [p.text for p in found.items] == ["written after"]


def test_an_older_file_opened_read_only_reads_its_passages_without_tags(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Store(path, migrations=MIGRATIONS[: PASSAGE_TAGS_SCHEMA - 1]) as old:
        agent_id = _agent(old)
        with old.transaction() as tx:
            tx.add_passage(agent_id, "old passage")
    with Store(path, read_only=True) as store:
        assert store.schema_version == PASSAGE_TAGS_SCHEMA - 1
        assert [(p.text, p.tags) for p in store.all_passages(agent_id)] == [("old passage", ())]
        assert [p.tags for p in store.search_passages(agent_id, "passage").items] == [()]


# --------------------------------------------------------------------------------- export


def test_tags_round_trip_through_an_export_on_both_stores(database: str, tmp_path: Path) -> None:
    with Store(database) as source:
        agent_id = _agent(source, "tagger")
        with source.transaction() as tx:
            tx.save_agent_state(agent_id, {"preset": "memgpt_chat", "core_memory": {}})
            tx.add_passage(agent_id, "tagged one", tags=["Work", "ann"])
            tx.add_passage(agent_id, "untagged one")
        data = json.loads(json.dumps(export_agent(source, "tagger")))
    assert data["version"] == VERSION == 3
    assert [p["tags"] for p in data["passages"]] == [["ann", "work"], []]
    with Store(tmp_path / "copy.db") as target:
        row = import_agent(target, data)
        assert [(p.text, p.tags) for p in target.all_passages(row.id)] == [
            ("tagged one", ("ann", "work")), ("untagged one", ())
        ]
        assert export_agent(target, "tagger")["passages"] == data["passages"]


def test_a_version_2_export_without_tags_still_imports(tmp_path: Path) -> None:
    data = {
        "format": "memagent-agent", "version": 2, "exported_at": "2026-01-01T00:00:00+00:00",
        "agent": {"name": "old", "created_at": "2026-01-01T00:00:00+00:00",
                  "state": {"preset": "memgpt_chat", "core_memory": {}}},
        "messages": [], "passages": [{"text": "from before tags", "created_at": "2026-01-01T00:00:00+00:00"}],
        "memory_versions": [],
    }
    with Store(tmp_path / "m.db") as store:
        row = import_agent(store, data)
        assert [(p.text, p.tags) for p in store.all_passages(row.id)] == [("from before tags", ())]


@pytest.mark.parametrize(("tags", "message"), [
    ("travel", r"passages\[0\]\.tags should be a list, not a string"),
    (["ok", ""], r"can't be imported: passages\[0\]\.tags\[1\] is empty"),
])
def test_bad_tags_in_an_export_are_one_line_and_import_nothing(tmp_path: Path, tags, message) -> None:
    data = {
        "format": "memagent-agent", "version": 3, "exported_at": "2026-01-01T00:00:00+00:00",
        "agent": {"name": "bad", "created_at": "2026-01-01T00:00:00+00:00",
                  "state": {"preset": "memgpt_chat", "core_memory": {}}},
        "messages": [], "passages": [{"text": "x", "created_at": "2026-01-01T00:00:00+00:00", "tags": tags}],
        "memory_versions": [],
    }
    with Store(tmp_path / "m.db") as store:
        with pytest.raises(UserError, match=message) as info:
            import_agent(store, data)
        assert "\n" not in str(info.value)
        assert store.find_agent("bad") is None


# ------------------------------------------------------------------------------ the functions


def test_the_default_forms_leave_the_filters_out_and_the_other_forms_have_them() -> None:
    registry = builtin_functions()
    for name, (key, extra) in FILTER_FORMS.items():
        small, whole = registry.get(name), registry.get(key)
        assert small is not None and whole is not None and small.name == whole.name == name
        small_params = set(small.schema["parameters"]["properties"])
        whole_params = set(whole.schema["parameters"]["properties"])
        assert whole_params - small_params == extra and not extra & small_params
        assert whole.schema["parameters"]["required"] == small.schema["parameters"]["required"]
    assert key not in registry.names()  # one entry per function where all are listed
    search = registry.get("conversation_search+filters")
    assert search is not None
    assert search.schema["parameters"]["properties"]["role"]["enum"] == ["user", "assistant"]
    tags = registry.get("archival_memory_insert+tags")
    assert tags is not None
    assert tags.schema["parameters"]["properties"]["tags"]["type"] == "array"


def test_a_preset_listing_both_forms_of_a_function_is_one_config_error(make_agent, home: Path) -> None:
    (home / "presets").mkdir(parents=True)
    (home / "presets" / "both.yaml").write_text(
        'system_prompt: "memgpt_chat"\nfunctions: ["send_message", "archival_memory_search", '
        '"archival_memory_search+filters"]\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="two forms of archival_memory_search: list one"):
        make_agent(preset="both")
    with pytest.raises(ValueError, match="two forms"):
        builtin_functions().select(["archival_memory_search", "archival_memory_search+filters"])


def test_the_default_preset_offers_the_small_forms_and_memgpt_blocks_the_filters(make_agent) -> None:
    agent, _ = make_agent()
    assert "tags" not in agent.functions["archival_memory_search"].schema["parameters"]["properties"]
    rich, _ = make_agent(agent="rich", preset="memgpt_blocks")
    assert "tags" in rich.functions["archival_memory_insert"].schema["parameters"]["properties"]
    assert "role" in rich.functions["conversation_search"].schema["parameters"]["properties"]


def test_a_model_stores_tags_and_finds_by_them(make_agent, events, store) -> None:
    agent, _ = make_agent([
        call("archival_memory_insert", content="Ann's birthday is 3 May", tags=["Ann", " birthdays "],
             request_heartbeat=True),
        call("archival_memory_insert", content="Bob's birthday is 9 June", request_heartbeat=True),
        call("archival_memory_search", query="birthday", tags=["ann"], request_heartbeat=True),
        call("archival_memory_search", query="birthday", request_heartbeat=True),
        reply("done"),
    ], preset="memgpt_blocks")
    agent.run_turn("remember", events)
    (_, s1, _), (_, s2, _), (_, s3, m3), (_, s4, m4), _ = results(events)
    assert (s1, s2, s3, s4) == ("OK", "OK", "OK", "OK")
    assert [p.tags for p in store.all_passages(agent.agent_id)] == [("ann", "birthdays"), ()]
    assert m3.startswith("Showing 1 of 1 results") and "tags: ann, birthdays, memory: Ann's birthday" in m3
    assert m4.startswith("Showing 2 of 2 results") and "Bob" in m4


def test_bad_tags_and_dates_are_function_errors_the_model_can_correct(make_agent, events, store) -> None:
    agent, _ = make_agent([
        call("archival_memory_insert", content="x", tags=["fine", " "], request_heartbeat=True),
        call("archival_memory_insert", content="x", tags=[f"t{i}" for i in range(MAX_TAGS + 1)],
             request_heartbeat=True),
        call("archival_memory_search", query="x", start_date=day(0), end_date=day(2), request_heartbeat=True),
        call("conversation_search", query="x", start_date=day(0), end_date=day(2), request_heartbeat=True),
        call("archival_memory_search", query="x", start_date="last week", request_heartbeat=True),
        reply("done"),
    ], preset="memgpt_blocks")
    agent.run_turn("go", events)
    found = results(events)[:-1]
    assert [status for _, status, _ in found] == ["Failed"] * 5
    messages = [message for _, _, message in found]
    assert messages[0] == "tags[1] is empty: leave it out or write a word."
    assert messages[1].startswith(f"tags has {MAX_TAGS + 1} tags; at most {MAX_TAGS} are allowed")
    assert messages[2] == messages[3] == f"end_date {day(2)} is before start_date {day(0)}: swap them."
    assert "use YYYY-MM-DD" in messages[4]
    assert store.count_passages(agent.agent_id) == 0  # nothing half-stored


def test_conversation_search_by_role_and_date_through_the_agent(make_agent, events, store) -> None:
    agent, _ = make_agent(preset="memgpt_blocks")
    with store.transaction() as tx:
        tx.add_message(agent.agent_id, "user", "I bought a canoe", {"role": "user", "content": "x"}, noon(4))
        tx.add_message(agent.agent_id, "assistant", "A canoe! Where?", {"role": "assistant", "content": "x"}, noon(4))
    agent.backend.outputs = [
        call("conversation_search", query="canoe", role="user", request_heartbeat=True),
        call("conversation_search", query="canoe", role="Assistant", end_date=day(3), request_heartbeat=True),
        call("conversation_search", query="canoe", start_date=day(4), end_date=day(4), request_heartbeat=True),
        call("conversation_search", query="canoe", start_date=day(3), request_heartbeat=True),
        reply("ok"),
    ]
    agent.run_turn("search", events)
    (_, _, by_user), (_, _, by_me), (_, _, that_day), (_, _, recent), _ = results(events)
    assert by_user.startswith("Showing 1 of 1 results") and "user - I bought a canoe" in by_user
    assert by_me.startswith("Showing 1 of 1 results") and "assistant - A canoe! Where?" in by_me  # case folded
    assert that_day.startswith("Showing 2 of 2 results") and recent == "No results found."


def test_a_role_other_than_user_or_assistant_is_refused_by_the_function() -> None:
    with pytest.raises(FunctionFailed, match="^role 'system' is not one of user or assistant"):
        conversation_search(None, "x", role="system")  # type: ignore[arg-type]
    with pytest.raises(FunctionFailed, match="is before start_date"):
        archival_memory_search(None, "x", start_date=noon(0).date(), end_date=noon(1).date())  # type: ignore[arg-type]


def test_a_passage_older_than_its_date_filter_is_not_shown(make_agent, events, store) -> None:
    agent, _ = make_agent(preset="memgpt_blocks")
    with store.transaction() as tx:
        tx.add_passage(agent.agent_id, "the anchor is rusty", datetime(2020, 5, 1, 12, tzinfo=UTC))
    agent.backend.outputs = [
        call("archival_memory_search", query="anchor", start_date="2021-01-01", request_heartbeat=True),
        call("archival_memory_search", query="anchor", end_date="2021-01-01", request_heartbeat=True),
        reply("ok"),
    ]
    agent.run_turn("search", events)
    (_, _, later), (_, _, earlier), _ = results(events)
    assert later == "No results found." and earlier.startswith("Showing 1 of 1 results")


def test_a_filter_that_leaves_the_window_short_searches_every_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the newest ``RANK_WINDOW`` matches are ranked (SQLite); old tagged or dated passages outside it are still
    found: the search falls back to every match, as for another agent's rows (the window made tiny here)."""
    from memagent.memory import search

    monkeypatch.setattr(search, "RANK_WINDOW", 4)
    with Store.in_memory() as store:
        agent_id = _agent(store)
        with store.transaction() as tx:
            old = tx.add_passage(agent_id, "kraken seen off the reef", noon(30), ["sea"])
            for i in range(12):
                tx.add_passage(agent_id, f"kraken story number {i}", noon(1))
        by_tag = store.search_passages(agent_id, "kraken", filters=SearchFilter(tags=("sea",)))
        by_date = store.search_passages(agent_id, "kraken", filters=SearchFilter(end=noon(20).date()))
        assert [p.id for p in by_tag.items] == [p.id for p in by_date.items] == [old]
        assert by_tag.total == by_date.total == 1
