"""Slash commands on a scripted agent: each one's effect in the agent AND in the database, plus the REPL's
completion, multiline input, streamed display and Ctrl-C handling."""

from __future__ import annotations

import contextlib
import io
import json
import signal

import pytest
from fakes import ScriptedBackend, call, reply
from rich.console import Console

from memagent.events import AssistantMessage, AssistantMessageDelta, Retry
from memagent.llm.backends.base import Completion
from memagent.repl.commands import COMMANDS, ExitChat, completions, run_command, uses_model
from memagent.repl.loop import run_interactive_line, run_scripted, scripted_messages
from memagent.repl.render import EventPrinter, LivePrinter


def run(line, agent, events, answers=(), home=None):
    """Run one command line; `answers` are what the user types when asked."""
    pending = list(answers)
    asked = []

    def ask(prompt):
        asked.append(prompt)
        return pending.pop(0) if pending else None

    run_command(line, agent, events, ask, home)
    return asked


def stored(store, agent):
    """The agent's in-context messages as the database has them."""
    row = store.find_agent(agent.name)
    return store.get_messages(row.id, row.state["in_context"])


def last_info(events):
    return events.of("info")[-1].text


# -- information -----------------------------------------------------------------------------------------


def test_help_lists_every_command_and_the_input_keys(make_agent, events):
    agent, _ = make_agent()
    run("/help", agent, events)
    text = last_info(events)
    assert all(command.usage in text for command in COMMANDS.values())
    assert "Alt-Enter" in text and "//" in text and "Ctrl-C" in text


def test_exit_leaves_the_loop(make_agent, events):
    agent, _ = make_agent()
    with pytest.raises(ExitChat):
        run("/exit", agent, events)


def test_memory_shows_sections_with_used_and_limit_and_the_counts(make_agent, events, store):
    agent, _ = make_agent()
    with store.transaction() as tx:
        tx.add_passage(agent.agent_id, "Brad sails on Sundays")
    run("/memory", agent, events)
    text = last_info(events)
    human = agent.core_memory.sections["human"]
    assert f"<human> {len(human.content)}/{human.max_length} characters" in text
    assert "Recall memory: 3 messages" in text and "Archival memory: 1 passages" in text
    assert "Brad sails on Sundays" in text


def test_dump_shows_the_last_n_messages(make_agent, events):
    agent, _ = make_agent([reply("Hello Brad")])
    agent.run_turn("I am Brad", events)
    run("/dump 3", agent, events)
    lines = last_info(events).splitlines()
    assert len(lines) == 3
    assert "user_message: I am Brad" in lines[0] and "Hello Brad" in lines[1]
    run("/dumpraw 1", agent, events)
    assert json.loads(last_info(events).split("] ", 1)[1])["role"] == "function"
    run("/dump x", agent, events)
    assert "Usage: /dump" in events.of("error")[-1].text


def test_fields_lists_the_template_fields_with_values(make_agent, events):
    agent, _ = make_agent()
    run("/fields", agent, events)
    text = last_info(events)
    for name in agent.template.field_names():
        assert f"{name}: {agent.template.fields[name]!r}" in text


# -- edits write through to the database -----------------------------------------------------------------


def test_pop_removes_messages_from_context_and_from_recall(make_agent, events, store):
    agent, _ = make_agent([reply("Hi Brad")])
    agent.run_turn("I am Brad", events)
    before = store.count_messages(agent.agent_id)
    run("/pop", agent, events)
    assert store.count_messages(agent.agent_id) == before - 3
    assert store.search_messages(agent.agent_id, "Brad").total == 0
    assert [m.id for m in stored(store, agent)] == [mid for mid, _ in agent.messages]
    run("/pop 1", agent, events)
    assert store.count_messages(agent.agent_id) == before - 4 and len(agent.messages) == 2


def test_pop_refuses_a_bad_count_and_keeps_the_first_message(make_agent, events, store):
    agent, _ = make_agent()
    run("/pop two", agent, events)
    assert "Usage: /pop" in events.of("error")[-1].text and store.count_messages(agent.agent_id) == 3
    run("/pop 99", agent, events)
    assert len(agent.messages) == 1 and store.count_messages(agent.agent_id) == 1
    run("/pop", agent, events)
    assert "Nothing to remove" in last_info(events)


def test_retry_replaces_the_answer_to_the_last_message(make_agent, events, store):
    agent, _ = make_agent([reply("alpha"), reply("bravo")])
    agent.run_turn("what is new?", events)
    count = store.count_messages(agent.agent_id)
    run("/retry", agent, events)
    assert [e.text for e in events.of("assistant_message")] == ["alpha", "bravo"]
    assert store.count_messages(agent.agent_id) == count
    assert store.search_messages(agent.agent_id, "alpha").total == 0
    assert store.search_messages(agent.agent_id, "bravo").total == 1
    assert store.search_messages(agent.agent_id, "new", roles=("user",)).total == 1  # (the reply: by its context)


def test_retry_without_a_user_message_says_so(make_agent, events):
    agent, _ = make_agent()
    run("/retry", agent, events)
    assert "no user message" in events.of("error")[-1].text


def test_rethink_changes_the_stored_inner_thoughts(make_agent, events, store):
    agent, _ = make_agent([reply("Hello", thoughts="old thoughts")])
    agent.run_turn("hi", events)
    run("/rethink I should be warmer.", agent, events)
    assistant = [m for m in stored(store, agent) if m.role == "assistant"][-1]
    assert assistant.payload["content"] == "I should be warmer."
    assert store.search_messages(agent.agent_id, "warmer").total == 1
    assert store.search_messages(agent.agent_id, "old thoughts").total == 0


def test_rethink_asks_for_the_text_when_it_is_missing(make_agent, events, store):
    agent, _ = make_agent()
    asked = run("/rethink", agent, events, answers=["Asked for."])
    assert asked == ["New inner thoughts: "]
    assert [m for m in stored(store, agent) if m.role == "assistant"][-1].payload["content"] == "Asked for."
    run("/rethink", agent, events)  # nobody answers: nothing changes
    assert "Usage: /rethink" in events.of("error")[-1].text


def test_rewrite_changes_the_stored_reply(make_agent, events, store):
    agent, backend = make_agent([reply("Hello Chad"), reply("ok")])
    agent.run_turn("hi", events)
    run("/rewrite Hello Brad!", agent, events)
    assistant = [m for m in stored(store, agent) if m.role == "assistant"][-1]
    assert json.loads(assistant.payload["function_call"]["arguments"])["message"] == "Hello Brad!"
    assert store.search_messages(agent.agent_id, "Chad").total == 0
    agent.run_turn("again", events)
    assert "Hello Brad!" in backend.prompts[-1] and "Hello Chad" not in backend.prompts[-1]


def test_rewrite_refuses_when_the_last_call_is_not_send_message(make_agent, events, store):
    agent, _ = make_agent([call("archival_memory_insert", content="note", request_heartbeat=False)])
    agent.config = type(agent.config)(max_steps_per_turn=1, verify_first_message=False)
    agent.run_turn("note this", events)
    run("/rewrite new text", agent, events)
    assert "not a send_message reply" in events.of("error")[-1].text
    assert store.search_messages(agent.agent_id, "new text").total == 0


def test_edit_template_field_asks_for_name_and_value_and_is_stored(make_agent, events, store):
    agent, _ = make_agent()
    name = agent.template.field_names()[0]
    asked = run("/edit_template_field", agent, events, answers=[name, "You are Sam the sailor."])
    assert asked == ["Template field name: ", f"New value for {name}: "]
    assert "You are Sam the sailor." in agent.system_message
    assert store.find_agent(agent.name).state["template_fields"] == {name: "You are Sam the sailor."}
    again, _ = make_agent()
    assert again.template.fields[name] == "You are Sam the sailor."


def test_edit_template_field_with_arguments_and_errors(make_agent, events, store):
    agent, _ = make_agent()
    name = agent.template.field_names()[1]
    run(f"/edit_template_field {name} Be brief.", agent, events)
    assert agent.template.fields[name] == "Be brief."
    run("/edit_template_field nosuchfield x", agent, events)
    assert "Unknown template field 'nosuchfield'" in events.of("error")[-1].text
    run(f"/edit_template_field {name}", agent, events)  # nobody answers the value
    assert store.find_agent(agent.name).state["template_fields"] == {name: "Be brief."}


def test_heartbeat_runs_a_step_and_stores_the_heartbeat(make_agent, events, store):
    agent, _ = make_agent([reply("Still here.")])
    run("/heartbeat", agent, events)
    assert [e.text for e in events.of("assistant_message")] == ["Still here."]
    kinds = [json.loads(m.payload["content"]).get("type") for m in stored(store, agent) if m.role == "user"]
    assert kinds[-1] == "heartbeat"


def test_summarize_replaces_old_messages_with_a_summary_they_stay_in_recall(make_agent, events, store):
    agent, backend = make_agent([reply(f"answer {i}") for i in range(4)] + ["We talked about boats."])
    for word in ("kayaks", "canoes", "yachts", "dinghies"):
        agent.run_turn(f"a question about {word}", events)
    total = store.count_messages(agent.agent_id)
    run("/summarize", agent, events)
    first = json.loads(stored(store, agent)[0].payload["content"])
    assert first["type"] == "system_alert" and "We talked about boats." in first["message"]
    assert len(agent.messages) < total and store.count_messages(agent.agent_id) == total + 1
    # found (first: the reply after it matches only by its context)
    assert store.search_messages(agent.agent_id, "kayaks").items[0].text == "a question about kayaks"
    assert all("kayaks" not in json.dumps(m) for _, m in agent.messages)


def test_summarize_with_too_few_messages_says_so(make_agent, events):
    agent, _ = make_agent()
    run("/summarize", agent, events)
    assert "Not enough messages" in last_info(events)


# -- attach and wrapper ----------------------------------------------------------------------------------


def test_attach_loads_a_folder_into_archival_memory(make_agent, events, store, tmp_path):
    agent, _ = make_agent()
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "boat.txt").write_text("Brad's boat is called Zanzibar.\n\n" + "It has red sails. " * 100)
    (folder / "sub" / "trip.md").write_text("The next trip goes to Madeira.")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    run(f"/attach {folder}", agent, events)
    # each found first (the passage after it matches too, by its context)
    assert store.search_passages(agent.agent_id, "Zanzibar").items[0].text.startswith("Brad's boat is called Zanzibar")
    assert store.search_passages(agent.agent_id, "Madeira").items[0].text == "The next trip goes to Madeira."
    passages = store.list_passages(agent.agent_id, limit=100)
    assert len(passages) >= 3 and all(len(p.text) <= 1000 for p in passages)
    text = last_info(events)
    assert "from 2 files" in text and "image.png: binary file" in text
    # The system message's archival count is refreshed, so the agent knows the passages are there.
    assert f"{len(passages)} total memories you created are stored in archival memory" in agent.system_message


def test_attach_a_missing_path_is_an_error(make_agent, events, store, tmp_path):
    agent, _ = make_agent()
    run(f"/attach {tmp_path / 'nope.txt'}", agent, events)
    assert "No such file or folder" in events.of("error")[-1].text
    assert store.count_passages(agent.agent_id) == 0


def test_wrapper_shows_and_switches_for_the_session(make_agent, events, home):
    agent, backend = make_agent([reply("hi")])
    run("/wrapper", agent, events, home=home)
    assert "Wrapper: chatml (constrained" in last_info(events) and "smollm2" in last_info(events)
    run("/wrapper smollm2", agent, events, home=home)
    assert agent.wrapper.name == "smollm2" and agent.wrapper.constrained
    backend.outputs = ['[{"name": "send_message", "arguments": {"inner_thoughts": "x", "message": "Hi Brad"}}]']
    agent.run_turn("hello", events)
    assert "<tool_call>" in backend.prompts[-1]
    assert events.of("assistant_message")[-1].text == "Hi Brad"


def test_an_unknown_wrapper_is_refused_with_a_suggestion(make_agent, events, home):
    agent, _ = make_agent()
    run("/wrapper smolm2", agent, events, home=home)
    assert "Unknown wrapper 'smolm2'" in events.of("error")[-1].text and "smollm2" in events.of("error")[-1].text
    assert agent.wrapper.name == "chatml"


def test_an_unknown_command_suggests_the_nearest(make_agent, events):
    agent, _ = make_agent()
    run("/memroy", agent, events)
    assert events.of("error")[-1].text == "Unknown command /memroy. Did you mean /memory?"
    run("/edit_te", agent, events)
    assert events.of("error")[-1].text.endswith("Did you mean /edit_template_field?")
    run("/xyzzy", agent, events)
    assert "Type /help" in events.of("error")[-1].text


# -- completion, multiline, scripted input ----------------------------------------------------------------


def test_completion_of_commands_fields_and_wrappers(make_agent):
    agent, _ = make_agent()
    assert completions("/ed", agent) == ["/edit_template_field"]
    assert set(completions("/re", agent)) == {"/retry", "/rethink", "/rewrite"}
    assert completions("/edit_template_field memgpt_intro", agent) == ["memgpt_introduction",
                                                                       "memgpt_introduction_end"]
    assert completions("/wrapper sm", agent, ["chatml", "smollm2"]) == ["smollm2"]
    assert completions("/edit_template_field memgpt_introduction more", agent) == []
    assert completions("hello /ed", agent) == []


def test_the_prompt_toolkit_completer_replaces_the_word_being_typed(make_agent, home):
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from memagent.repl.prompt import completer

    agent, _ = make_agent()
    assert list(completer(lambda: None, home).get_completions(Document("/ed"), CompleteEvent())) == []  # not open yet
    typed = Document("/edit_template_field memgpt_co")
    found = list(completer(lambda: agent, home).get_completions(typed, CompleteEvent()))
    assert [(c.text, c.start_position) for c in found] == [("memgpt_control_flow", -9), ("memgpt_core_memory", -9)]


def test_only_model_lines_get_the_spinner():
    assert uses_model("hello") and uses_model("/retry") and uses_model("/heartbeat")
    assert not uses_model("/memory") and not uses_model("/edit_template_field") and not uses_model("  ")


def test_scripted_input_joins_a_multiline_block():
    lines = ["first\n", "//\n", "line one\n", "line two\n", "//\n", "last\n"]
    assert list(scripted_messages(lines)) == ["first", "line one\nline two", "last"]


def test_scripted_chat_sends_a_block_as_one_message_and_stops_at_exit(make_agent, events, store):
    agent, _ = make_agent([reply("Got both lines")])
    run_scripted(agent, ["//", "line one", "line two", "//", "/exit", "never sent"], events)
    assert [e.text for e in events.of("user_message")] == ["line one\nline two"]
    assert store.search_messages(agent.agent_id, "never sent").total == 0


def test_an_empty_message_is_refused_and_not_stored(make_agent, events, store):
    agent, _ = make_agent()
    printer, out = live_printer()
    run_interactive_line("   ", agent, printer, ask=lambda _: None, home=None)
    assert out.getvalue().startswith("✗ Empty message") and len(out.getvalue().splitlines()) == 1
    assert store.count_messages(agent.agent_id) == 3


# -- the terminal view: streaming and Ctrl-C -------------------------------------------------------------


def live_printer() -> tuple[LivePrinter, io.StringIO]:
    out = io.StringIO()
    return LivePrinter(Console(file=out, width=200, no_color=True)), out


def test_a_streamed_reply_is_printed_once(make_agent):
    agent, backend = make_agent([reply("Hello there, Brad!")])
    agent.stream = True
    printer, out = live_printer()
    with printer.working():
        agent.run_turn("hi", printer)
    text = out.getvalue()
    assert text.count("Hello there, Brad!") == 1
    assert text.index("🤖 Hello there, Brad!") < text.index("💭 I should answer.")


def test_a_reply_that_did_not_stream_is_printed_in_full():
    printer, out = live_printer()
    with printer.working():
        printer(AssistantMessageDelta("Hel"))
        printer(Retry("bad output", 1))
        printer(AssistantMessage("Hello"))
    lines = out.getvalue().splitlines()
    assert lines[0] == "🤖 Hel" and lines[-1] == "🤖 Hello"


def test_json_lines_still_carry_the_deltas():
    out = io.StringIO()
    EventPrinter(Console(file=out), json_output=True)(AssistantMessageDelta("Hi"))
    assert json.loads(out.getvalue()) == {"type": "assistant_message_delta", "text": "Hi"}


def test_ctrl_c_during_generation_keeps_the_message_and_the_agent(make_agent, store):
    def interrupt(prompt: str) -> str:
        raise KeyboardInterrupt

    agent, backend = make_agent([interrupt, reply("Back again")])
    agent.stream = True
    printer, out = live_printer()
    run_interactive_line("remember the blue boat", agent, printer, ask=lambda _: None, home=None)
    assert "Cancelled. Your message is saved" in out.getvalue()
    assert store.search_messages(agent.agent_id, "blue boat").total == 1
    assert [m.id for m in stored(store, agent)] == [mid for mid, _ in agent.messages]
    run_interactive_line("are you there?", agent, printer, ask=lambda _: None, home=None)
    assert "Back again" in out.getvalue()
    assert "remember the blue boat" in backend.prompts[-1]


def test_a_ctrl_c_swallowed_where_it_landed_still_cancels_the_turn(make_agent, store):
    def swallowed_interrupt(prompt: str) -> str:
        # as when SIGINT lands in a ctypes callback or a __del__: Python prints the exception and drops it
        with contextlib.suppress(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        return reply("This reply must not be shown")

    agent, backend = make_agent([swallowed_interrupt, reply("Back again")])
    agent.stream = True
    printer, out = live_printer()
    before = signal.getsignal(signal.SIGINT)
    run_interactive_line("tell me a long story", agent, printer, ask=lambda _: None, home=None)
    assert "Cancelled. Your message is saved" in out.getvalue()
    assert "must not be shown" not in out.getvalue()
    assert signal.getsignal(signal.SIGINT) is before
    assert store.search_messages(agent.agent_id, "long story").total == 1
    run_interactive_line("are you there?", agent, printer, ask=lambda _: None, home=None)
    assert "Back again" in out.getvalue()


def test_with_stream_on_the_agent_sends_the_reply_as_deltas(make_agent, events):
    agent, _ = make_agent([Completion(text=reply("streamed"))])
    agent.stream = True
    agent.run_turn("hi", events)
    assert "".join(e.text for e in events.of("assistant_message_delta")) == "streamed"


def test_the_scripted_backend_is_not_used_by_information_commands(make_agent, events):
    backend = ScriptedBackend([])
    agent, _ = make_agent(backend=backend)
    for line in ("/help", "/memory", "/dump", "/fields", "/wrapper", "/pop 0"):
        run(line, agent, events)
    assert backend.prompts == [] and not events.of("error")


def test_input_keys_alt_enter_and_multiline_mode():
    from prompt_toolkit import PromptSession
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from memagent.repl.prompt import InputMode, key_bindings

    mode = InputMode()
    with create_pipe_input() as keys:
        session = PromptSession(input=keys, output=DummyOutput(), key_bindings=key_bindings(mode),
                                multiline=Condition(lambda: mode.multiline))
        keys.send_text("one\x1b\rtwo\r")  # Esc Enter (Alt-Enter) adds a line, Enter sends
        assert session.prompt("> ") == "one\ntwo"
        mode.multiline = True
        keys.send_text("three\rfour\x1b\r")  # Enter adds a line, Esc Enter sends
        assert session.prompt("> ") == "three\nfour"
        keys.send_text("//\r")  # a lone // is sent by Enter, to switch back
        assert session.prompt("> ") == "//"


# -- hostile input: cleaned once where it enters, never raises -------------------------------------------

HOSTILE = "new\ud800 text\x00 with \x1b[31mcolour\x1b[0m\x07"
CLEANED = "new\ufffd text with colour"


def test_rethink_and_rewrite_store_hostile_text_cleaned(make_agent, events, store):
    agent, _ = make_agent([reply("Hello")])
    agent.run_turn("hi", events)
    run(f"/rethink {HOSTILE}", agent, events)
    run(f"/rewrite {HOSTILE}", agent, events)
    assistant = [m for m in stored(store, agent) if m.role == "assistant"][-1]
    assert assistant.payload["content"] == CLEANED
    assert json.loads(assistant.payload["function_call"]["arguments"])["message"] == CLEANED
    assert not events.of("error")


def test_answers_to_questions_are_cleaned_too(make_agent, events, store):
    agent, _ = make_agent()
    name = agent.template.field_names()[0]
    run("/edit_template_field", agent, events, answers=[name, HOSTILE])
    assert store.find_agent(agent.name).state["template_fields"] == {name: CLEANED}
    run(f"/edit_template_field {name} {HOSTILE}", agent, events)
    assert agent.template.fields[name] == CLEANED


@pytest.mark.parametrize("path", ["a\x00b", "\ud800.txt", "x" * 5000, "\x1b[2J/nowhere"],
                         ids=["nul", "surrogate", "too-long", "escape"])
def test_attach_a_hostile_path_is_one_error(make_agent, events, store, path):
    agent, _ = make_agent()
    run(f"/attach {path}", agent, events)
    (error,) = events.of("error")
    assert "\x1b" not in error.text and "\x00" not in error.text
    assert store.count_passages(agent.agent_id) == 0


def test_an_unknown_hostile_command_is_echoed_clean(make_agent, events):
    agent, _ = make_agent()
    run("/\x1b[2Jwipe\ud800", agent, events)
    assert events.of("error")[-1].text.startswith("Unknown command /wipe\ufffd.")


def test_scripted_lines_are_cleaned_and_blank_lines_skipped(make_agent, events, store):
    agent, _ = make_agent([reply("one"), reply("two")])
    run_scripted(agent, [f"{HOSTILE}\n", "\n", "   \n", "\x00\n", "second\n"], events)
    assert [e.text for e in events.of("user_message")] == [CLEANED, "second"]
    assert not events.of("error")
    assert store.search_messages(agent.agent_id, "colour", roles=("user",)).total == 1  # (the reply: by context)


def test_piped_bytes_that_are_not_utf8_are_read_as_replacement_characters(make_agent, events, store):
    from memagent.repl.loop import tolerant

    agent, _ = make_agent([reply("ok")])
    stdin = io.TextIOWrapper(io.BytesIO(b"caf\xe9 \xff\xfe au lait\n"), encoding="utf-8")
    run_scripted(agent, tolerant(stdin), events)
    assert [e.text for e in events.of("user_message")] == ["caf\ufffd \ufffd\ufffd au lait"]
