"""The shared call parser, on raw outputs shaped like the ones local models really produce."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memagent.errors import LLMOutputError
from memagent.llm.parse import (
    _MAX_CHARS,
    ParsedCall,
    clean_call,
    extract_json_value,
    normalise_call,
    parse_function_call,
    validate_call,
)
from memagent.llm.wrappers.registry import available_wrappers


def _fn(name: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    parameters = {"type": "object", "properties": props, "required": required}
    return {"name": name, "description": f"{name} does things.", "parameters": parameters}


S: dict[str, Any] = {"type": "string"}
HB: dict[str, Any] = {"type": "boolean"}
BLOCK: dict[str, Any] = {"type": "string", "enum": ["persona", "human"]}
FUNCTIONS = [
    _fn("send_message", {"message": S}, ["message"]),
    _fn("pause_heartbeats", {"minutes": {"type": "integer"}}, ["minutes"]),
    _fn(
        "core_memory_append",
        {"name": BLOCK, "content": S, "request_heartbeat": HB},
        ["name", "content", "request_heartbeat"],
    ),
    _fn(
        "conversation_search",
        {"query": S, "page": {"type": "integer"}, "request_heartbeat": HB},
        ["query", "request_heartbeat"],
    ),
    _fn("archival_memory_insert", {"content": S, "request_heartbeat": HB}, ["content", "request_heartbeat"]),
]
NAMES = {f["name"] for f in FUNCTIONS}
APPEND = {"name": "human", "content": "Name is Chad, likes tea.", "request_heartbeat": True}


def parse(raw: str, **kwargs: Any) -> ParsedCall:
    return parse_function_call(raw, FUNCTIONS, **kwargs)


# ------------------------------------------------------------------------------ well-formed and dialects


def test_memgpt_envelope_with_inner_thoughts_in_params() -> None:
    raw = '{"function": "send_message", "params": {"inner_thoughts": "User greeted.", "message": "Hi Chad!"}}'
    assert parse(raw) == ParsedCall("send_message", {"message": "Hi Chad!"}, "User greeted.", ())


def test_forced_prefix_is_reattached_once() -> None:
    prefix = '\n{\n  "function":'
    raw = (
        ' "core_memory_append",\n  "params": {\n    "inner_thoughts": "Save it.",\n    "name": "human",\n'
        '    "content": "Name is Chad, likes tea.",\n    "request_heartbeat": true\n  }\n}'
    )
    assert parse(raw, prefix=prefix) == ParsedCall("core_memory_append", APPEND, "Save it.", ())
    assert parse(prefix + raw, prefix=prefix) == ParsedCall("core_memory_append", APPEND, "Save it.", ())
    repeated = '{"function": "send_message", "params": {"message": "Hi"}}'  # model re-typed the prefix
    assert parse(repeated, prefix=prefix) == ParsedCall("send_message", {"message": "Hi"}, None, ())


def test_top_level_inner_thoughts_noforce_style() -> None:
    raw = '{"inner_thoughts": "Chat back.", "function": "send_message", "params": {"message": "Sure."}}'
    assert parse(raw) == ParsedCall("send_message", {"message": "Sure."}, "Chat back.", ())


@pytest.mark.parametrize(
    ("raw", "repairs"),
    [
        ('{"name": "send_message", "arguments": {"message": "hi"}}', ()),
        ('{"name": "send_message", "parameters": {"message": "hi"}}', ()),  # Llama 3.x
        (
            '{"tool_name": "send_message", "parameters": {"message": "hi"}, "tool_call_id": "0"}',
            (),
        ),  # Command R
        ('{"function": {"function": "send_message", "params": {"message": "hi"}}}', ()),  # LM Studio nesting
        (
            '{"id": "call_1", "type": "function", "function": {"name": "send_message", '
            '"arguments": "{\\"message\\": \\"hi\\"}"}}',
            ("arguments_string",),
        ),  # OpenAI tool_call
        ('{"tool_calls": [{"name": "send_message", "arguments": {"message": "hi"}, "id": "123456789"}]}', ()),
        ('{"function": "send_message", "message": "hi"}', ("flattened_arguments",)),
    ],
)
def test_key_dialects(raw: str, repairs: tuple[str, ...]) -> None:
    assert parse(raw) == ParsedCall("send_message", {"message": "hi"}, None, repairs)


def test_smollm2_array_inside_tool_call_tags() -> None:
    raw = (
        '<tool_call>[{"name": "conversation_search", "arguments": {"query": "tea", "page": 1, '
        '"request_heartbeat": false}}]</tool_call>'
    )
    call = parse(raw, start_marker="<tool_call>", end_marker="</tool_call>")
    assert call == ParsedCall("conversation_search", {"query": "tea", "page": 1, "request_heartbeat": False}, None, ())


def test_mistral_tool_calls_marker_with_and_without_marker_given() -> None:
    raw = '[TOOL_CALLS][{"name": "send_message", "arguments": {"message": "Bonjour"}, "id": "a1B2c3D4e"}]</s>'
    with_marker = parse(raw, start_marker="[TOOL_CALLS]")
    assert with_marker == ParsedCall("send_message", {"message": "Bonjour"}, None, ("ignored_trailing_text",))
    without = parse(raw)  # `[TOOL_CALLS]` itself is skipped: it is not JSON
    assert (without.name, without.arguments) == ("send_message", {"message": "Bonjour"})
    assert "stripped_prefix_text" in without.repairs


def test_closing_tag_inside_an_argument_does_not_cut_the_call() -> None:
    raw = (
        '<tool_call>\n{"name": "send_message", "arguments": {"message": "Wrap it in </tool_call> tags."}}\n</tool_call>'
    )
    call = parse(raw, start_marker="<tool_call>", end_marker="</tool_call>")
    assert call == ParsedCall("send_message", {"message": "Wrap it in </tool_call> tags."}, None, ())


def test_granite_arguments_as_a_json_string() -> None:
    raw = (
        '<tool_call>{"name": "archival_memory_insert", "arguments": "{\\n  \\"content\\": '
        '\\"Chad likes tea\\",'
        '\\n  \\"request_heartbeat\\": \\"true\\"\\n}"}</tool_call>'
    )
    call = parse(raw, start_marker="<tool_call>", end_marker="</tool_call>")
    assert call.name == "archival_memory_insert"
    assert call.arguments == {"content": "Chad likes tea", "request_heartbeat": True}
    assert call.repairs == ("arguments_string", "coerced_types")


# ------------------------------------------------------------------------------------- broken output


def test_two_objects_back_to_back_keeps_the_first() -> None:  # letta #177
    raw = (
        '{"function": "core_memory_append", "params": {"inner_thoughts": "Save.", "name": "human", '
        '"content": "Name is Chad, likes tea.", "request_heartbeat": true}}\n'
        '{"function": "send_message", "params": {"inner_thoughts": "Reply.", "message": "Noted!"}}<|im_end|>'
    )
    assert parse(raw) == ParsedCall("core_memory_append", APPEND, "Save.", ("ignored_trailing_text",))


def test_missing_closing_braces_after_stop_string() -> None:  # MemGPT's "  }\n}\n" stop
    raw = (
        '{\n  "function": "core_memory_append",\n  "params": {\n    "inner_thoughts": "Save.",\n'
        '    "name": "human",\n    "content": "Name is Chad, likes tea.",\n    "request_heartbeat": true\n'
    )
    assert parse(raw) == ParsedCall("core_memory_append", APPEND, "Save.", ("closed_braces",))


def test_output_cut_mid_string_is_closed_up() -> None:
    raw = '{"function": "send_message", "params": {"inner_thoughts": "Long answer.", "message": "Hello the'
    assert parse(raw) == ParsedCall("send_message", {"message": "Hello the"}, "Long answer.", ("closed_braces",))


def test_output_cut_inside_a_key_drops_the_partial_member() -> None:
    raw = '{"function": "conversation_search", "params": {"inner_thoughts": "Look.", "query": "tea", "requ'
    call = parse(raw)
    assert call == ParsedCall(
        "conversation_search",
        {"query": "tea", "request_heartbeat": False},
        "Look.",
        ("closed_braces", "default_heartbeat"),
    )


def test_output_cut_before_required_argument_asks_for_it() -> None:
    raw = '{"function": "send_message", "params": {"inner_thoughts": "Hmm", "mess'
    with pytest.raises(LLMOutputError, match="^send_message is missing required argument: message.$") as info:
        parse(raw)
    assert info.value.raw == raw


# Calls a small model left open to write something else (issue 12): each must still give its call, whole.
HI = '{"function": "send_message", "params": {"inner_thoughts": "User said hi.", "message": "Hi Brad!"'
STRAY_TEXT_CASES = {
    "both objects open, then a stray special token": (HI + " <|>", "User said hi.", ["closed_before_stray_text"]),
    "both open, then the chat's end token": (HI + "<|im_end|>", "User said hi.", ["closed_before_stray_text"]),
    "both open, then a Llama end token and more": (
        HI + "</s>\n<|assistant|>", "User said hi.", ["special_tokens", "closed_before_stray_text"]
    ),
    "outer open, a made-up FUNCTION RETURN, misspelt thoughts": (
        '{"function": "send_message", "params": {"inner_thought": "User said hi.", "message": "Hi Brad!"}\n'
        'FUNCTION RETURN {"status": "OK", "message": null, "time": "2026-12-02 10:00:00 AM UTC+0000"}',
        "User said hi.",
        ["closed_before_stray_text", "renamed_inner_thoughts"],
    ),
    "outer open, FUNCTION RETURN: with a colon, camel-case thoughts": (
        '{"function": "send_message", "params": {"innerThoughts": "User said hi.", "message": "Hi Brad!"}\n'
        'FUNCTION RETURN: {"status": "OK"}\n',
        "User said hi.",
        ["closed_before_stray_text", "renamed_inner_thoughts"],
    ),
    "outer open, then prose": (
        HI + "}\nI have greeted the user.", "User said hi.", ["closed_before_stray_text"]
    ),
    "a special token inside a closed call": (
        HI + " <|> }}", "User said hi.", ["special_tokens"]
    ),
    "the misspelt thoughts at the top level": (
        '{"inner_thought": "User said hi.", "function": "send_message", "params": {"message": "Hi Brad!"}}',
        "User said hi.",
        ["renamed_inner_thoughts"],
    ),
}


@pytest.mark.parametrize("case", list(STRAY_TEXT_CASES))
def test_a_call_left_open_for_stray_text_is_recovered_whole(case: str) -> None:
    raw, thoughts, repairs = STRAY_TEXT_CASES[case]
    assert parse(raw) == ParsedCall("send_message", {"message": "Hi Brad!"}, thoughts, tuple(repairs))


def test_the_forced_prefix_continued_and_left_open_for_a_special_token() -> None:
    raw = 'send_message", "params": {"inner_thoughts": "Greet.", "message": "Hi Brad!" <|>'
    call = parse(raw, prefix='{"function": "')
    assert call == ParsedCall("send_message", {"message": "Hi Brad!"}, "Greet.", ("closed_before_stray_text",))


def test_a_cut_argument_followed_by_stray_text_is_not_taken_for_a_whole_one() -> None:
    # the last member's value is not whole (`tr`): the call loses that member, and says it was cut
    raw = '{"function": "conversation_search", "params": {"query": "tea", "request_heartbeat": tr'
    call = parse(raw)
    assert call.arguments == {"query": "tea", "request_heartbeat": False}
    assert "closed_braces" in call.repairs and "closed_before_stray_text" not in call.repairs


def test_stray_text_closing_never_beats_a_call_the_model_wrote_whole() -> None:
    # prefix + a whole object of the model's own: `{"function": "{"` must not become a call to "{"
    raw = '{"inner_thoughts": "Greet.", "name": "send_message", "arguments": {"message": "Hi"}}'
    call = parse(raw, prefix='{"function": "')
    assert (call.name, call.arguments, call.inner_thoughts) == ("send_message", {"message": "Hi"}, "Greet.")


def test_raw_newlines_and_tabs_inside_strings() -> None:
    raw = '{"function": "send_message", "params": {"inner_thoughts": "Two\tlines", "message": "One\nTwo"}}'
    assert parse(raw) == ParsedCall("send_message", {"message": "One\nTwo"}, "Two\tlines", ("lenient_json",))


def test_markdown_escaped_underscores() -> None:  # Groq/llama3, MemGPT #1203
    raw = r'{"function": "send\_message", "params": {"inner\_thoughts": "Escaped.", "message": "a\\_b"}}'
    assert parse(raw) == ParsedCall("send_message", {"message": "a\\_b"}, "Escaped.", ("escaped_underscore",))


def test_single_quotes_and_python_literals() -> None:
    raw = (
        "{'function': 'core_memory_append', 'params': {'inner_thoughts': \"Chad's info\", 'name': 'human', "
        "'content': 'Name is Chad, likes tea.', 'request_heartbeat': True}}"
    )
    assert parse(raw) == ParsedCall("core_memory_append", APPEND, "Chad's info", ("single_quotes",))
    python = '{"function": "conversation_search", "params": {"query": "x", "page": None}}'
    assert parse(python) == ParsedCall(
        "conversation_search",
        {"query": "x", "request_heartbeat": False},
        None,
        ("python_literal", "dropped_null_args", "default_heartbeat"),
    )
    with pytest.raises(LLMOutputError, match="^send_message is missing required argument: message.$"):
        parse('{"function": "send_message", "params": {"message": None}}')


def test_trailing_commas() -> None:
    raw = '{"function": "send_message", "params": {"message": "Hi, there,",},}'
    assert parse(raw) == ParsedCall("send_message", {"message": "Hi, there,"}, None, ("trailing_comma",))


def test_prose_and_code_fence_around_the_json() -> None:
    raw = (
        'Sure! Here is the function call:\n```json\n{"function": "send_message", "params": '
        '{"inner_thoughts": "Friendly.", "message": "Hello!"}}\n```\nI hope this helps!'
    )
    assert parse(raw) == ParsedCall(
        "send_message", {"message": "Hello!"}, "Friendly.", ("stripped_prefix_text", "ignored_trailing_text")
    )


def test_command_r_action_block() -> None:
    raw = (
        'Action: ```json\n[\n    {\n        "tool_name": "conversation_search",\n'
        '        "parameters": {"query": "weather in Paris", "page": "2"}\n    }\n]\n```'
    )
    call = parse(raw)
    assert (call.name, call.arguments) == (
        "conversation_search",
        {"query": "weather in Paris", "page": 2, "request_heartbeat": False},
    )
    assert set(call.repairs) == {
        "stripped_prefix_text",
        "ignored_trailing_text",
        "default_heartbeat",
        "coerced_types",
    }


def test_several_calls_in_a_list_uses_the_first() -> None:
    raw = (
        '[{"name": "send_message", "arguments": {"message": "one"}}, '
        '{"name": "send_message", "arguments": {"message": "two"}}]'
    )
    assert parse(raw) == ParsedCall("send_message", {"message": "one"}, None, ("dropped_extra_calls",))


def test_heartbeat_at_top_level_is_moved_into_arguments() -> None:
    raw = '{"function": "archival_memory_insert", "params": {"content": "x"}, "request_heartbeat": true}'
    assert parse(raw) == ParsedCall(
        "archival_memory_insert",
        {"content": "x", "request_heartbeat": True},
        None,
        ("moved_request_heartbeat",),
    )


# -------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            '{"type": "bot_response", "message": "Hi Bob, nice to meet you!"}',  # letta #1105
            'The JSON has no function name (keys: "type", "message"). Call a function: give its name and arguments.',
        ),
        ("{More human than human is our motto.", "Your reply had no JSON function call."),  # letta #248
        ("I am not sure what to do here.", "Your reply had no JSON function call."),
        (
            '{"function": "send_msg", "params": {"message": "x"}}',
            'Unknown function "send_msg". Call one of: send_message, pause_heartbeats, core_memory_append, '
            "conversation_search, archival_memory_insert.",
        ),
        (
            '{"function": "core_memory_append", "params": {"name": "section", "content": "x"}}',  # letta #794
            'Argument "name" of core_memory_append must be one of: "persona", "human" (got "section").',
        ),
        (
            '{"function": "archival_memory_insert", "params": {"content": {"text": "x"}}}',  # letta #716
            'Argument "content" of archival_memory_insert must be a string.',
        ),
        (
            '{"function": "core_memory_append", "params": {"request_heartbeat": true}}',
            "core_memory_append is missing required arguments: name, content.",
        ),
        (
            '{"name": "send_message", "arguments": "hello"}',
            'The arguments of "send_message" must be a JSON object.',
        ),
        ("[]", "Your reply was an empty JSON list. Call one function."),
        (
            '{"function": "pause_heartbeats", "params": {"minutes": "ten"}}',
            'Argument "minutes" of pause_heartbeats must be an integer.',
        ),
    ],
)
def test_errors_are_short_actionable_and_carry_the_raw_text(raw: str, message: str) -> None:
    with pytest.raises(LLMOutputError) as info:
        parse(raw)
    assert str(info.value).startswith(message)
    assert info.value.raw == raw


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000,
        '{"a": ' * 30_000,
        "{" + " " * 150_000,
        "x" * 300_000,
        '{"a": "' + "x\\" * 5000,
        "[1" + ",1" * 50_000,
        "\ud800{'a': b'x'}",
    ],
)
def test_hostile_text_only_raises_llm_output_error(raw: str) -> None:
    with pytest.raises(LLMOutputError) as info:
        parse(raw)
    assert info.value.raw == raw


def _call_of_length(wrapper_name: str, length: int) -> tuple[str, str]:
    """A whole send_message call in the wrapper's own format, exactly `length` characters long, and its message."""
    wrapper = available_wrappers()[wrapper_name].cls()
    function_call = {"name": "send_message", "arguments": {"message": "MESSAGE"}}
    text = wrapper.render_call({"role": "assistant", "content": "t", "function_call": function_call})
    message = "x" * (length - len(text) + len("MESSAGE"))
    return text.replace("MESSAGE", message), message


@pytest.mark.parametrize("wrapper_name", sorted(available_wrappers()))
def test_the_length_cap_is_the_same_for_every_wrapper(wrapper_name: str) -> None:
    # Wrappers that cut their opening marker off (hermes, mistral, smollm2) or rebuild the call (functionary)
    # must still refuse a reply one character over the cap, as it came, and take one right at the cap.
    wrapper = available_wrappers()[wrapper_name].cls()
    at_cap, message = _call_of_length(wrapper_name, _MAX_CHARS)
    assert len(at_cap) == _MAX_CHARS
    assert wrapper.parse(at_cap, FUNCTIONS).arguments == {"message": message}
    over = at_cap + " "
    with pytest.raises(LLMOutputError, match=rf"^Your reply was too long \({_MAX_CHARS + 1} characters\)") as info:
        wrapper.parse(over, FUNCTIONS)
    assert info.value.raw == over


@pytest.mark.parametrize("wrapper_name", sorted(available_wrappers()))
def test_a_parsed_call_carries_no_lone_surrogate_nul_or_escape_code(wrapper_name: str) -> None:
    # JSON escapes decode to characters no encoder, database or terminal takes (issue 16: "\\ud800" ended the chat)
    wrapper = available_wrappers()[wrapper_name].cls()
    thoughts, message = "\ud800 ok\x00", "a\udc00b\x1b[31mc\U0001f600\x07"
    function_call = {"name": "send_message", "arguments": {"message": message}}
    text = wrapper.render_call({"role": "assistant", "content": thoughts, "function_call": function_call})
    escaped = re.sub(r"[^\x00-\x7f]", lambda char: json.dumps(char.group())[1:-1], text)  # `\\ud800`, `\\u001b`
    assert "\\udc00" in escaped and "\\u001b" in escaped
    for raw in (text, escaped):
        call = wrapper.parse(raw, FUNCTIONS)
        assert call.arguments == {"message": "a\ufffdbc\U0001f600"}
        assert call.inner_thoughts in ("\ufffd ok", None)  # None: the plain formats have no thoughts
    # arguments given as a JSON string are decoded by the parser: cleaned all the same
    double = '{"name": "send_message", "arguments": "{\\"message\\": \\"x\\\\ud800\\"}"}'
    assert available_wrappers()["hermes"].cls().parse(double, FUNCTIONS).arguments == {"message": "x\ufffd"}


def test_clean_call_cleans_every_string_and_keeps_the_rest() -> None:
    call = ParsedCall("f\x00", {"a\ud800": ["\x1b[2Jx", 1, None, {"k": "\udfff"}]}, "t\x00", ("lenient_json",))
    assert clean_call(call) == ParsedCall("f", {"a\ufffd": ["x", 1, None, {"k": "\ufffd"}]}, "t", ("lenient_json",))
    assert parse('{"name": "send_message", "arguments": {"message": "\\ud800"}}').arguments == {"message": "\ud800"}


def test_error_messages_quote_the_model_cleaned() -> None:
    with pytest.raises(LLMOutputError) as info:
        parse('{"function": "\\ud800\\u001b[2J", "params": {}}')
    assert str(info.value).startswith('Unknown function "\ufffd".')
    assert info.value.raw == '{"function": "\\ud800\\u001b[2J", "params": {}}'


def test_functionary_errors_carry_the_reply_as_it_came() -> None:
    wrapper = available_wrappers()["functionary"].cls()
    raw = '<|from|>assistant\n<|recipient|>all\n<|content|>{"arguments": {}}'  # no function addressed
    with pytest.raises(LLMOutputError, match="no function name") as info:
        wrapper.parse(raw, FUNCTIONS)
    assert info.value.raw == raw


# ------------------------------------------------------------------------------------- the layers alone


def test_extract_json_value_layers_and_markers() -> None:
    assert extract_json_value('noise {"a": [1, 2]} {"b": 2}') == (
        {"a": [1, 2]},
        ["stripped_prefix_text", "ignored_trailing_text"],
    )
    assert extract_json_value("<x>{'a': None,}</x>", start_marker="<x>", end_marker="</x>") == (
        {"a": None},
        ["trailing_comma", "single_quotes"],
    )
    assert extract_json_value('<x>{"a": [1, {"b": "c', start_marker="<x>") == (
        {"a": [1, {"b": "c"}]},
        ["closed_braces"],
    )
    assert extract_json_value('<x>{"a": 1</x>', start_marker="<x>", end_marker="</x>") == (
        {"a": 1},
        ["closed_braces"],
    )
    assert extract_json_value('{"a": 1}', start_marker="<absent>") == ({"a": 1}, [])
    with pytest.raises(LLMOutputError):
        extract_json_value("no json at all")


def test_normalise_call_returns_thoughts_and_strips_them_from_arguments() -> None:
    value = {"name": "send_message", "arguments": {"inner_thoughts": "t", "message": "m"}}
    assert normalise_call(value) == ("send_message", {"message": "m"}, "t", [])
    assert normalise_call([{"thought": "x", "function": "f", "args": {"a": 1}}]) == ("f", {"a": 1}, "x", [])
    with pytest.raises(LLMOutputError, match="no function name"):
        normalise_call({"params": {"message": "m"}})


def test_validate_call_coerces_safely_and_drops_unknown_arguments() -> None:
    args, repairs = validate_call(
        "conversation_search", {"query": 42, "page": "3", "request_heartbeat": "TRUE", "extra": 1}, FUNCTIONS
    )
    assert args == {"query": "42", "page": 3, "request_heartbeat": True}
    assert repairs == ["dropped_unknown_args", "coerced_types"]
    assert validate_call("core_memory_append", {**APPEND, "name": "Human"}, FUNCTIONS) == (
        APPEND,
        ["coerced_types"],
    )
    assert validate_call("pause_heartbeats", {"minutes": 5.0}, FUNCTIONS) == (
        {"minutes": 5},
        ["coerced_types"],
    )
    with pytest.raises(LLMOutputError, match="must be true or false"):
        validate_call("archival_memory_insert", {"content": "x", "request_heartbeat": "maybe"}, FUNCTIONS)
    with pytest.raises(LLMOutputError, match="must be an integer"):
        validate_call("pause_heartbeats", {"minutes": True}, FUNCTIONS)


def test_a_huge_integer_is_a_number_not_an_internal_error() -> None:
    # math.isfinite(10**400) raises OverflowError: it ended the parse with "no JSON function call".
    measure = _fn("measure", {"ratio": {"type": "number"}, "label": S}, ["ratio"])
    raw = '{"function": "measure", "params": {"ratio": 1' + "0" * 400 + ', "label": 2.5}}'
    call = parse_function_call(raw, [measure])
    assert call == ParsedCall("measure", {"ratio": 10**400, "label": "2.5"}, None, ("coerced_types",))
    with pytest.raises(LLMOutputError, match='"ratio" of measure must be a number'):
        parse_function_call('{"function": "measure", "params": {"ratio": 1e999}}', [measure])


def test_function_names_are_matched_loosely_only_when_unambiguous() -> None:
    raw = '{"name": "functions.Send-Message", "arguments": {"message": "hi"}}'
    assert parse(raw) == ParsedCall("send_message", {"message": "hi"}, None, ("normalised_name",))
    assert parse_function_call(raw).name == "functions.Send-Message"  # no functions offered: no validation


# --------------------------------------------------------------------------------------------- fuzzing

VALID_CALLS = [
    '{"function": "send_message", "params": {"inner_thoughts": "Greet.", "message": "Hi Chad!"}}',
    '{"function": "core_memory_append", "params": {"inner_thoughts": "Save.", "name": "human", '
    '"content": "Likes tea.", "request_heartbeat": true}}',
    '<tool_call>[{"name": "conversation_search", "arguments": {"query": "tea", "page": 2, '
    '"request_heartbeat": false}}]</tool_call>',
    "{'function': 'pause_heartbeats', 'params': {'minutes': 5}}",
]


def _assert_parsed_or_llm_error(raw: str) -> None:
    try:
        call = parse(raw, start_marker="<tool_call>", end_marker="</tool_call>")
    except LLMOutputError as err:
        assert err.raw == raw
        return
    assert call.name in NAMES
    assert validate_call(call.name, call.arguments, FUNCTIONS) == (call.arguments, [])
    assert call.inner_thoughts is None or isinstance(call.inner_thoughts, str)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list("{}[]\":,'\\ntrue"))))
def test_fuzz_arbitrary_text(raw: str) -> None:
    _assert_parsed_or_llm_error(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID_CALLS), st.data())
def test_fuzz_mutated_valid_calls(valid: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(valid)), label="cut")
    at = data.draw(st.integers(0, len(valid)), label="insert_at")
    junk = data.draw(st.text(max_size=8) | st.sampled_from(['"', "}", "{", "\\", "'", ",", "]", "\n"]))
    for raw in (valid[:cut], valid[:at] + junk + valid[at:], junk + valid, valid + junk, valid[cut:]):
        _assert_parsed_or_llm_error(raw)


def test_every_valid_fuzz_seed_parses() -> None:
    parsed = [parse(raw, start_marker="<tool_call>", end_marker="</tool_call>") for raw in VALID_CALLS]
    assert [call.name for call in parsed] == [
        "send_message",
        "core_memory_append",
        "conversation_search",
        "pause_heartbeats",
    ]
    assert json.dumps([call.arguments for call in parsed]).count("request_heartbeat") == 2
