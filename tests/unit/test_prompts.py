"""The templated system message, presets and their files (seed 004 / MemGPT PR #895)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fakes import reply

from memagent.errors import ConfigError
from memagent.memory.core import DEFAULT_SECTION_LIMIT, CoreMemory, Section
from memagent.prompts.presets import Library, builtin_fields, initial_core_memory, load_preset, load_template
from memagent.prompts.template import MemoryStats, SystemPromptTemplate

STATS = MemoryStats("2024-01-01 10:00:00 AM UTC+0000", 12, 3)
PIRATE_PROMPT = """{memgpt_introduction}

{memgpt_realism_authenticity}

{memgpt_control_flow}

{memgpt_basic_functions}

{memgpt_memory_editing}

{memgpt_recall_memory}

{memgpt_core_memory}

{memgpt_archival_memory}

{memgpt_introduction_end}

{pirate_instruction}
"""
PIRATE_PRESET = """system_prompt: "memgpt_chat_pirate_templated"
functions:
  - "send_message"
  - "pause_heartbeats"
  - "core_memory_append"
  - "core_memory_replace"
  - "conversation_search"
  - "conversation_search_date"
  - "archival_memory_insert"
  - "archival_memory_search"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def pirate_home(home: Path) -> Path:
    """Seed 004's three files, exactly as written there, in the user's folders."""
    write(home / "system_prompts" / "memgpt_chat_pirate_templated.txt", PIRATE_PROMPT)
    write(home / "system_prompts" / "memgpt_chat_pirate_templated.yaml",
          "pirate_instruction: 'Always reponsond like an old pirate!!!'\n")
    write(home / "presets" / "memgpt_pirate_preset.yaml", PIRATE_PRESET)
    return home


def test_the_default_prompt_is_a_template_of_memgpt_fields():
    library = Library(None)
    template = load_template(library, load_preset(library, "memgpt_chat"), builtin_fields())
    assert template.field_names() == [
        "memgpt_introduction", "memgpt_realism_authenticity", "memgpt_control_flow", "memgpt_basic_functions",
        "memgpt_memory_editing", "memgpt_recall_memory", "memgpt_core_memory", "memgpt_archival_memory",
        "memgpt_introduction_end"]
    text = template.render_prompt()
    assert "send_message" in text and "Base instructions finished." in text and "{" not in text


def test_seed_004_pirate_preset_end_to_end(pirate_home, make_agent, events):
    agent, backend = make_agent([reply("Arr, hello matey!")], preset="memgpt_pirate_preset")
    assert agent.template.source == str(pirate_home / "system_prompts" / "memgpt_chat_pirate_templated.txt")
    assert "Always reponsond like an old pirate!!!" in agent.system_message
    agent.run_turn("hi", events)
    assert "Always reponsond like an old pirate!!!" in backend.prompts[0]
    assert [e.text for e in events.of("assistant_message")] == ["Arr, hello matey!"]


def test_user_files_come_before_bundled_ones(home):
    write(home / "presets" / "memgpt_chat.yaml", "system_prompt: mine\nfunctions: [send_message]\n")
    write(home / "system_prompts" / "mine.txt", "Just me.")
    preset = load_preset(Library(home), "memgpt_chat")
    assert preset.system_prompt == "mine" and preset.source == home / "presets" / "memgpt_chat.yaml"


def test_a_missing_referenced_file_names_the_path_looked_for(home):
    write(home / "presets" / "p.yaml", "system_prompt: ghost\nfunctions: [send_message]\n")
    with pytest.raises(ConfigError, match=r"ghost\.txt"):
        load_preset(Library(home), "p")


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a/b", "a\\b", "..", "", ".hidden", "-x", "a\nb",
                                  "\x1b[31mred", "a\x00", "\ud800", "x" * 65])
def test_names_that_are_paths_or_unsafe_to_echo_are_refused(home, name):
    with pytest.raises(ConfigError, match="^Invalid preset name .*letters, digits") as raised:
        load_preset(Library(home), name)
    assert "\n" not in str(raised.value) and "\x1b" not in str(raised.value)


def test_names_inside_a_preset_follow_the_same_rule(home):
    write(home / "presets" / "p.yaml", "system_prompt: ../../etc/passwd\nfunctions: [send_message]\n")
    with pytest.raises(ConfigError, match="^Invalid system prompt name '../../etc/passwd'"):
        load_preset(Library(home), "p")
    write(home / "presets" / "q.yaml", "system_prompt: memgpt_chat\npersona: [a, b]\nfunctions: [send_message]\n")
    with pytest.raises(ConfigError, match="^Invalid persona name"):
        load_preset(Library(home), "q")


# -- files that are not what they should be: one line naming the file and the fix ------------------------

BAD_FILES = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not a text file (it holds NUL bytes)"),
    "latin-1": ("system_prompt: memgpt_chat  # café\nfunctions: [send_message]\n".encode("latin-1"),
                "is not UTF-8 text (byte 0xe9 on line 1)"),
    "utf-16": ("system_prompt: memgpt_chat\nfunctions: [send_message]\n".encode("utf-16"), "NUL bytes"),
    "bad-yaml": (b"system_prompt: [unclosed\nfunctions: [send_message]\n", "Invalid YAML in"),
}


def one_line_config_error(call) -> str:
    with pytest.raises(ConfigError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_preset_file_is_one_line(home, kind):
    data, expected = BAD_FILES[kind]
    path = home / "presets" / "broken.yaml"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    message = one_line_config_error(lambda: load_preset(Library(home), "broken"))
    assert str(path) in message and expected in message


@pytest.mark.parametrize("target", ["system_prompts/mine.txt", "system_prompts/mine.yaml", "personas/pp.txt",
                                    "humans/hh.txt", "presets/layout.txt"])
def test_a_binary_or_non_utf8_template_or_memory_file_is_one_line(home, make_agent, target):
    write(home / "presets" / "p.yaml", "system_prompt: mine\npersona: pp\nhuman: hh\n"
          "system_message_layout_template: layout\nfunctions: [send_message]\n")
    write(home / "system_prompts" / "mine.txt", "You are {name}.")
    write(home / "system_prompts" / "mine.yaml", "name: Sam\n")
    write(home / "personas" / "pp.txt", "I am Sam.")
    write(home / "humans" / "hh.txt", "Brad.")
    write(home / "presets" / "layout.txt", "{system}\n{core_memory_content}")
    for index, (data, expected) in enumerate(((b"ok\x00\x01", "NUL bytes"), ("café".encode("latin-1"), "not UTF-8"))):
        (home / target).write_bytes(data)
        message = one_line_config_error(lambda name=f"a{index}": make_agent(preset="p", agent=name))
        assert str(home / target) in message and expected in message


def test_control_and_escape_codes_in_user_files_are_cleaned(home, make_agent):
    write(home / "presets" / "p.yaml", "system_prompt: mine\npersona: pp\nfunctions: [send_message]\n")
    write(home / "system_prompts" / "mine.txt", "You are {name}.\x1b[2J\x07")
    write(home / "system_prompts" / "mine.yaml", "name: Sam\x1b[31m\n")
    write(home / "personas" / "pp.txt", "I am\x1b]0;title\x07 Sam.")
    agent, _ = make_agent(preset="p")
    assert "You are Sam." in agent.system_message and "I am Sam." in agent.system_message
    assert "\x1b" not in agent.system_message and "\x07" not in agent.system_message


def test_a_field_file_key_must_be_a_field_name(home, make_agent):
    write(home / "presets" / "p.yaml", "system_prompt: mine\nfunctions: [send_message]\n")
    write(home / "system_prompts" / "mine.txt", "You are {name}.")
    write(home / "system_prompts" / "mine.yaml", "name: Sam\n'bad key': x\n")
    message = one_line_config_error(lambda: make_agent(preset="p"))
    assert "mine.yaml" in message and "'bad key' is not a field name" in message


def test_custom_core_memory_sections_with_an_optional_limit(home, make_agent):
    write(home / "presets" / "dm.yaml", "system_prompt: memgpt_chat\ncore_memory_type: custom\n"
          "core_memory_file: dm_memory\nfunctions: [send_message, core_memory_append]\n")
    write(home / "presets" / "dm_memory.yaml",
          "quest:\n  content: 'Find the dragon'\n  max_length: 150\nparty:\n  content: 'Ana, Bo'\n")
    core = initial_core_memory(Library(home), load_preset(Library(home), "dm"))
    assert core.to_dict() == {"quest": {"content": "Find the dragon", "max_length": 150},
                              "party": {"content": "Ana, Bo", "max_length": DEFAULT_SECTION_LIMIT}}
    agent, _ = make_agent(preset="dm")
    assert "<quest characters=15/150>\nFind the dragon\n</quest>" in agent.system_message
    assert "<persona characters" not in agent.system_message


def test_layout_and_section_templates_per_preset(home, make_agent):
    write(home / "presets" / "lay.yaml", "system_prompt: memgpt_chat\nfunctions: [send_message]\n"
          "system_message_layout_template: my_layout\ncore_memory_section_template: my_section\n")
    write(home / "presets" / "my_layout.txt", "MEMORY FIRST\n{core_memory_content}\n---\n{system}")
    write(home / "presets" / "my_section.txt", "[{memory_key}] {memory_value}")
    agent, _ = make_agent(preset="lay")
    assert agent.system_message.startswith("MEMORY FIRST\n[persona] ")
    assert "[human] First name: Chad\n---\n" in agent.system_message


SEED_004_MEMORY = (
    "12 previous messages between you and the user are stored in recall memory (use functions to access them)\n"
    "3 total memories you created are stored in archival memory (use functions to access them)\n\n"
    "Core memory shown below (limited in size, additional information stored in archival / recall memory):\n"
    "<persona characters=9/2000>\nI am Sam.\n</persona>\n<human characters=16/2000>\nFirst name: Chad\n</human>"
)


def test_the_default_layout_is_seed_004s_with_the_edit_time_after_core_memory():
    """The same lines as MemGPT's layout; the time of the last edit moves from the heading to the end, so all before
    it is the same for every new agent of a preset (the shared prompt prefix covers core memory too)."""
    core = CoreMemory({"persona": Section("I am Sam.", 2000), "human": Section("First name: Chad", 2000)})
    text = SystemPromptTemplate("Hello.", {}).render(core, STATS)
    assert text == (
        "Hello.\n\n### Memory\n" + SEED_004_MEMORY + "\n(Memory last modified: 2024-01-01 10:00:00 AM UTC+0000)"
    )


def test_seed_004s_layout_is_bundled_for_presets_that_want_it_verbatim(home):
    core = CoreMemory({"persona": Section("I am Sam.", 2000), "human": Section("First name: Chad", 2000)})
    (home / "presets").mkdir(parents=True, exist_ok=True)
    write(home / "presets" / "seed.yaml", "system_prompt: memgpt_chat\nfunctions: [send_message]\n"
          "system_message_layout_template: memgpt_layout\n")
    template = load_template(Library(home), load_preset(Library(home), "seed"), builtin_fields())
    text = replace(template, text="Hello.").render(core, STATS)
    assert text == "Hello.\n\n### Memory [last modified: 2024-01-01 10:00:00 AM UTC+0000]\n" + SEED_004_MEMORY


def test_braces_in_values_and_memory_appear_literally():
    core = CoreMemory({"human": Section("likes {curly} and {0} and {x.__class__}")})
    template = SystemPromptTemplate("A {field} B {{literal}}", {"field": "{not_a_field} {}"})
    text = template.render(core, STATS)
    assert "A {not_a_field} {} B {literal}" in text
    assert "likes {curly} and {0} and {x.__class__}" in text


@pytest.mark.parametrize("bad", ["{x.__class__}", "{x[0]}", "{x!r}", "{x:>10}", "{0}", "{}"])
def test_attribute_index_and_format_placeholders_are_refused(bad):
    with pytest.raises(ConfigError, match="only plain names"):
        SystemPromptTemplate(f"hi {bad}", {"x": "v"})


def test_an_unknown_placeholder_is_an_error_at_load_time_naming_it(home):
    write(home / "presets" / "u.yaml", "system_prompt: unknown_field\nfunctions: [send_message]\n")
    write(home / "system_prompts" / "unknown_field.txt", "{memgpt_introduction}\n{nowhere_defined}")
    library = Library(home)
    with pytest.raises(ConfigError, match=r"\{nowhere_defined\}"):
        load_template(library, load_preset(library, "u"), builtin_fields())


def test_editing_a_field_rebuilds_the_system_message_and_persists(pirate_home, make_agent, events):
    agent, _ = make_agent(preset="memgpt_pirate_preset")
    agent.set_template_field("pirate_instruction", "Talk like a robot.")
    assert "Talk like a robot." in agent.system_message and "old pirate" not in agent.system_message
    again, _ = make_agent()
    assert again.template.fields["pirate_instruction"] == "Talk like a robot."
    assert "Talk like a robot." in again.system_message
    with pytest.raises(ConfigError, match="Unknown template field"):
        agent.set_template_field("nope", "x")


def test_the_system_message_is_byte_identical_until_memory_changes(make_agent, events, store):
    from fakes import call

    agent, backend = make_agent([reply("a"), reply("b"),
                                 call("core_memory_append", name="human", content="Likes tea",
                                      request_heartbeat=True), reply("c")])
    agent.run_turn("one", events)
    before = agent.system_message
    agent.run_turn("two", events)
    assert agent.system_message == before
    assert backend.prompts[1].startswith(backend.prompts[0][: backend.prompts[0].index("<|im_start|>user")])
    agent.run_turn("I like tea", events)
    assert agent.system_message != before and "Likes tea" in agent.system_message
    # The statistics refreshed with the edit: 3 boot + 3 + 3 + the user message + the edit's call and result.
    assert "12 previous messages" in agent.system_message
