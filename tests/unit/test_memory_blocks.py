"""Core memory blocks (label, description, limit, read-only) and the richer block tools a preset can list."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import call, reply

from memagent.errors import ConfigError
from memagent.memory.core import MAX_BLOCKS, CoreMemory, CoreMemoryEditError, Section
from memagent.prompts.presets import Library, blocks_from_yaml, initial_core_memory, load_preset
from memagent.prompts.template import DEFAULT_LAYOUT, DEFAULT_SECTION, SystemPromptTemplate


def memory() -> CoreMemory:
    return CoreMemory({
        "human": Section("Name: Brad\nLikes: tea", 100, "Facts about the user"),
        "rules": Section("Be kind.", 100, read_only=True),
    })


def test_insert_puts_lines_where_asked_and_at_the_end_by_default() -> None:
    core = memory()
    assert core.insert("human", "Works: nurse") == "Name: Brad\nLikes: tea\nWorks: nurse"
    assert core.insert("human", "Age: 40", 0) == "Age: 40\nName: Brad\nLikes: tea\nWorks: nurse"
    assert core.insert("human", "City: Lisbon", 2).split("\n")[2] == "City: Lisbon"
    with pytest.raises(CoreMemoryEditError, match="Line 9 is outside block 'human', which has 5 lines"):
        core.insert("human", "x", 9)
    assert CoreMemory({"empty": Section("")}).insert("empty", "first") == "first"


def test_replace_exactly_needs_one_occurrence_and_rewrite_replaces_everything() -> None:
    core = memory()
    assert core.replace_exactly("human", "tea", "coffee") == "Name: Brad\nLikes: coffee"
    core.append("human", "Dislikes: coffee")
    with pytest.raises(CoreMemoryEditError, match="appears 2 times"):
        core.replace_exactly("human", "coffee", "tea")
    with pytest.raises(CoreMemoryEditError, match="not found"):
        core.replace_exactly("human", "sailing", "tea")
    assert core.sections["human"].content == "Name: Brad\nLikes: coffee\nDislikes: coffee"  # failures changed nothing
    assert core.rewrite("human", "Name: Brad (a nurse who likes tea)") == "Name: Brad (a nurse who likes tea)"


def test_a_read_only_block_refuses_every_edit_and_a_limit_is_never_passed() -> None:
    core = memory()
    for edit in (
        lambda: core.append("rules", "x"),
        lambda: core.replace("rules", "kind", "rude"),
        lambda: core.replace_exactly("rules", "kind", "rude"),
        lambda: core.insert("rules", "x"),
        lambda: core.rewrite("rules", "x"),
        lambda: core.delete("rules"),
    ):
        with pytest.raises(CoreMemoryEditError, match="'rules' is read-only"):
            edit()
    assert core.sections["rules"].content == "Be kind."
    with pytest.raises(CoreMemoryEditError, match="over its limit of 100"):
        core.rewrite("human", "x" * 101)
    with pytest.raises(CoreMemoryEditError, match="over its limit of 100"):
        core.insert("human", "x" * 90)
    assert core.sections["human"].content == "Name: Brad\nLikes: tea"


def test_blocks_are_created_and_deleted_within_bounds() -> None:
    core = memory()
    core.create("projects", "Garden shed", "What the user is building")
    assert core.sections["projects"] == Section("Garden shed", 2000, "What the user is building")
    with pytest.raises(CoreMemoryEditError, match="already exists"):
        core.create("projects")
    with pytest.raises(CoreMemoryEditError, match="can't be a block label"):
        core.create("my projects!")
    core.delete("projects")
    assert list(core.sections) == ["human", "rules"]
    for n in range(MAX_BLOCKS - 2):
        core.create(f"b{n}")
    with pytest.raises(CoreMemoryEditError, match=f"already has {MAX_BLOCKS} blocks"):
        core.create("one-more")


def test_description_and_read_only_survive_the_state_and_old_state_reads_the_same() -> None:
    core = memory()
    assert CoreMemory.from_dict(core.to_dict()).sections == core.sections
    plain = {"persona": {"content": "I am Sam.", "max_length": 2000}}
    assert CoreMemory.from_dict(plain).to_dict() == plain  # a block without them is stored as before


def test_the_system_message_shows_use_limit_description_and_read_only() -> None:
    template = SystemPromptTemplate("Be an agent.", {})
    from memagent.prompts.template import MemoryStats

    text = template.render(memory(), MemoryStats("now", 0, 0))
    assert '<human characters=21/100 description="Facts about the user">' in text
    assert "<rules characters=8/100 read-only>\nBe kind.\n</rules>" in text
    plain = template.render(CoreMemory({"persona": Section("I am Sam.")}), MemoryStats("now", 0, 0))
    assert "<persona characters=9/2000>\nI am Sam.\n</persona>" in plain  # unchanged for a plain block
    assert DEFAULT_LAYOUT and DEFAULT_SECTION  # both still the defaults a preset can replace


def test_the_blocks_preset_declares_its_blocks_and_tools() -> None:
    preset = load_preset(Library(None), "memgpt_blocks")
    core = initial_core_memory(Library(None), preset)
    assert list(core.sections) == ["persona", "human", "guidelines"]
    assert core.sections["guidelines"].read_only and core.sections["human"].description
    assert {"memory_insert", "memory_replace", "memory_rethink", "memory_create_block"} <= set(preset.functions)


@pytest.mark.parametrize(
    ("blocks", "problem"),
    [
        ({"human": {"content": "x", "limit": 0}}, "has limit 0"),
        ({"human": {"content": "x", "limit": "big"}}, "has limit 'big'"),
        ({"human": {"content": "x", "read_only": "yes"}}, "has read_only 'yes'"),
        ({"human": {"content": "x", "colour": "red"}}, "unknown key 'colour'"),
        ({"human": {"description": "x"}}, "needs 'content'"),
        ({"human": {"content": "x" * 20, "limit": 10}}, "20 characters, over its limit of 10"),
        ({"bad label!": "x"}, "core memory block"),
        ([], "must map block labels"),
    ],
)
def test_a_mistake_in_declared_blocks_is_one_line_naming_the_file_and_block(blocks: object, problem: str) -> None:
    with pytest.raises(ConfigError, match="preset.yaml") as caught:
        blocks_from_yaml(Path("preset.yaml"), blocks)
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_the_block_tools_edit_memory_and_explain_failures_to_the_model(make_agent, events) -> None:
    agent, _ = make_agent(
        [
            call("memory_insert", label="human", content="Name: Brad", line=0, request_heartbeat=True),
            call("memory_replace", label="human", old_content="Brad", new_content="Bradley", request_heartbeat=True),
            call("memory_create_block", label="pets", description="The user's pets", content="Rex, a dog",
                 request_heartbeat=True),
            call("memory_rethink", label="guidelines", new_content="anything goes", request_heartbeat=True),
            call("memory_rethink", label="pets", new_content="Rex (dog, 3)", request_heartbeat=True),
            call("memory_delete_block", label="nope", request_heartbeat=True),
            reply("Noted."),
        ],
        preset="memgpt_blocks",
    )
    agent.run_turn("I'm Brad and I have a dog, Rex.", events)
    statuses = [(e.text, e.data["status"]) for e in events.of("function_return")]
    assert statuses == [
        ("memory_insert", "OK"), ("memory_replace", "OK"), ("memory_create_block", "OK"),
        ("memory_rethink", "Failed"), ("memory_rethink", "OK"), ("memory_delete_block", "Failed"),
        ("send_message", "OK"),
    ]
    failures = [e.data["message"] for e in events.of("function_return") if e.data["status"] == "Failed"]
    assert "read-only" in failures[0] and "No core memory section named 'nope'" in failures[1]
    sections = agent.core_memory.sections
    assert sections["human"].content == "Name: Bradley"
    assert sections["pets"] == Section("Rex (dog, 3)", 2000, "The user's pets")
    assert '<pets characters=12/2000 description="The user\'s pets">' in agent.prompt()
    assert agent.state.core_memory["pets"]["description"] == "The user's pets"  # saved with the agent's state
