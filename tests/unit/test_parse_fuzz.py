"""Fuzzing the shared parser through every registered wrapper, and the send_message streamer.

Whatever a model writes, a wrapper's `parse` either returns a call to an offered function whose arguments
already pass validation, with no string a UTF-8 encoder or a terminal would choke on, or raises
LLMOutputError of its own making (not an internal error caught by parse_function_call's last resort), with the
reply as it came: never anything else. The inputs are structured, not only random text: calls in each wrapper's
own format (arguments full of surrogates, escapes, NUL, special tokens, huge numbers and brackets) cut at every
point and mutated (pieces inserted, ranges deleted, doubled or replaced), hostile calls, random JSON values as
replies and as arguments, and random JSON-ish text. Every test is derandomized, so CI runs the same inputs.

Per run, for each registered wrapper: three calls cut at every point (plain and with `\\uXXXX` escapes, about
1,000 cuts), 140 hostile calls, 60 mutated calls, 40 JSON values (two replies each) and 40 texts: about
15,400 parses in all, which `test_the_fuzz_parses_at_least_10000_inputs` checks; plus 500 streamer runs.
About 25 s of CPU: under a minute on 2 busy cores.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memagent.errors import LLMOutputError
from memagent.functions.memory import builtin_functions
from memagent.llm.stream import ArgumentStreamer
from memagent.llm.validate import validate_call
from memagent.llm.wrappers.base import LLMChatCompletionWrapper
from memagent.llm.wrappers.registry import available_wrappers

WRAPPERS = sorted(available_wrappers())  # every name `memagent wrappers list` shows without user files
_REGISTRY = builtin_functions()
PROBE = {  # one function with every kind of parameter, so validation's coercions are fuzzed too
    "name": "probe",
    "description": "Takes every type.",
    "parameters": {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "flag": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object"},
            "block": {"type": "string", "enum": ["persona", "human"]},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["text"],
    },
}
FUNCTIONS: list[dict[str, Any]] = [f.schema for f in _REGISTRY.select(_REGISTRY.names())] + [PROBE]
NAMES = {f["name"] for f in FUNCTIONS}
FAST = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None)

# What models (and attackers) put in calls: broken JSON, escapes, surrogates, NUL, special tokens, depth.
PIECES = [
    '"', "'", "{", "}", "[", "]", ",", ":", "\\", "\\\\", '\\"', "\n", "\\n", "\\_", "\t", " ",
    "\x00", "\ud800", "\udfff", "\x1b[31m", "\x7f", "\u2028", "\ufeff", "é", "😀",
    "\\ud800", "\\udfff", "\\ud83d\\ude00", "\\ud83d", "\\u0000", "\\u001b", "\\uZZZZ", "\\u12", "\\x00",
    "1e999", "-1e999", "1e-999", "9" * 40, "9" * 5000, "NaN", "Infinity", "-0", "0x10",
    "true", "True", "None", "null", "false",
    "<|im_end|>", "<|im_start|>", "</s>", "<s>", "<|eot_id|>", "<end_of_turn>", "[INST]", "[/INST]",
    "[TOOL_CALLS]", "<tool_call>", "</tool_call>", "<|from|>", "<|recipient|>", "<|content|>", "<|stop|>",
    "FUNCTION RETURN:", "<|>", '"function": ', '"name": ', '"params": {', '"arguments": "{', '"inner_thoughts": ',
    "[" * 70, "{" * 70, '{"a": ' * 70, "]" * 70, '"send_message"', '"probe"',
]
text_pieces = st.sampled_from(PIECES)
any_char = st.characters(exclude_categories=())  # surrogates included
any_text = st.lists(any_char | text_pieces).map("".join)
chunk_sizes = st.lists(st.integers(1, 9), max_size=40)
messy_text = st.lists(text_pieces | st.text(any_char, max_size=6), max_size=6).map("".join)
json_scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(-(10**400), 10**400) | st.floats() | messy_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(messy_text | text_pieces, children, max_size=4),
    max_leaves=12,
)
SAMPLE_CALLS = [
    ("send_message", "Hi \"Chad\"!\nCafé ✓ 😀 \\o/ <|im_end|> }]", {"message": 'Sure: {"a": [1]} </tool_call>'}),
    ("core_memory_append", "Save it.", {"name": "human", "content": "Likes tea.", "request_heartbeat": True}),
    ("probe", None, {"text": "é\\", "count": -12, "ratio": 2.5e-3, "flag": False, "tags": ["a", ""], "maybe": None}),
]
parsed_inputs: list[int] = []  # one entry per parse, for the count test


def make(name: str, constrained: bool = False) -> LLMChatCompletionWrapper:
    return available_wrappers()[name].cls(constrained=constrained)


def rendered(wrapper: LLMChatCompletionWrapper, name: str, thoughts: Any, arguments: Any) -> str:
    """A past call in the wrapper's own format (as a model would write it whole)."""
    message = {"role": "assistant", "content": thoughts, "function_call": {"name": name, "arguments": arguments}}
    return wrapper.render_call(message)  # type: ignore[attr-defined]


def continued(wrapper: LLMChatCompletionWrapper, text: str) -> str:
    """What the model writes itself when the prompt ends with the call's opening marker and forced prefix."""
    forced = getattr(wrapper, "call_start", "") + wrapper.forced_prefix(False)  # type: ignore[attr-defined]
    return text[len(forced) :] if forced and text.startswith(forced) else text


def escaped(text: str) -> str:
    """Non-ASCII characters (only ever inside strings here) as JSON `\\uXXXX` escapes, astral ones as surrogate
    pairs, as models trained on `ensure_ascii` JSON write them; lone surrogates become `\\ud800`-style escapes."""
    return re.sub(r"[^\x00-\x7f]", lambda char: json.dumps(char.group())[1:-1], text)


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def encodable(value: Any) -> bool:
    """No lone surrogate (UTF-8 can't encode it), NUL or escape code in any of the value's strings."""
    for text in strings(value):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return False
        if "\x00" in text or "\x1b" in text:
            return False
    return True


def assert_parses_or_refuses(wrapper: LLMChatCompletionWrapper, raw: str) -> None:
    parsed_inputs.append(1)
    try:
        call = wrapper.parse(raw, FUNCTIONS)
    except LLMOutputError as err:
        cause = err  # not an internal error turned into LLMOutputError by parse_function_call's last resort
        while cause.__cause__ is not None:
            cause = cause.__cause__
        assert isinstance(cause, LLMOutputError), f"{type(cause).__name__}: {cause}"
        assert err.raw == raw
        assert encodable(str(err))
        assert str(err)
        return
    assert call.name in NAMES
    assert validate_call(call.name, call.arguments, FUNCTIONS) == (call.arguments, [])
    assert call.inner_thoughts is None or isinstance(call.inner_thoughts, str)
    assert encodable([call.name, call.arguments, call.inner_thoughts])


# ---------------------------------------------------------------------------------------------- structured


def cuts(text: str) -> Iterator[str]:
    yield from (text[:i] for i in range(len(text) + 1))


@pytest.mark.parametrize("name", WRAPPERS)
def test_calls_cut_at_every_point(name: str) -> None:
    wrapper = make(name)
    for function, thoughts, arguments in SAMPLE_CALLS:
        whole = rendered(wrapper, function, thoughts, arguments)
        for text in {continued(wrapper, whole), escaped(whole)}:
            for raw in cuts(text):
                assert_parses_or_refuses(wrapper, raw)


HOSTILE_ARGUMENTS = [
    {"message": "\ud800"},
    {"message": "a\udfffb\x00c\x1b[2Jd"},
    {"message": "[" * 5000},
    {"message": "{" * 70 + '"'},
    {"message": "\\ud800 \\u0000"},
    {"message": "<|im_end|>" * 50},
    {"text": "x", "count": 10**300, "ratio": 1e308, "maybe": -(2**70)},
    {"text": "x", "count": "99999999999999999999", "ratio": "1e999", "flag": "TRUE", "tags": '["a", "\\ud800"]'},
    {"text": "x", "extra": {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}},
    {"text": "x", "block": "HUMAN", "maybe": None, "tags": None, "ratio": float("nan")},
]
RAW_HOSTILE = [
    '{"function": "send_message", "params": {"message": "\\ud800"}}',
    '{"function": "send_message", "params": {"message": "\\udc00\\ud800\\u0000\\u001b[31m"}}',
    '{"name": "send_message", "arguments": {"message": "\\ud83d\\ude00 ok"}}',
    '{"function": "send_message", "params": {"inner_thoughts": "\\ud800", "message": "x"}}',
    '{"function": "send_\\ud800message", "params": {"message": "x"}}',
    '{"function": "probe", "params": {"text": "x", "count": ' + "9" * 5000 + "}}",
    '{"function": "probe", "params": {"text": "x", "ratio": 1e999}}',
    '{"function": "probe", "params": {"text": "x", "ratio": -Infinity, "count": NaN}}',
    "{'function': 'probe', 'params': {'text': 'x', 'count': 1" + "0" * 5000 + "}}",
    "{'function': 'send_message', 'params': {'message': b'x'}}",
    "{'function': 'send_message', 'params': {'message': '\\ud800'}}",
    "{'function': 'send_message', 'params': {'message': '\\N{BOGUS}'}}",
    '{"function": "send_message", "params": {"message": "' + "\\" * 10001 + '"}}',
    '{"function": "send_message", "params": {"message": "x"' + "}" * 5000,
    '{"function": "send_message", "params": "{\\"message\\": \\"\\\\ud800\\"}"}',
    '[{"name": "send_message", "arguments": {"message": "x"}}' + ", []" * 3000 + "]",
    '{"tool_calls": [' * 40 + "]" * 40,
    '{"function": ' * 9 + "{}" + "}" * 9,
    "\x00" * 1000 + '{"function": "send_message", "params": {"message": "x"}}',
    "\ud800{'a': b'x'}\udfff",
]


@pytest.mark.parametrize("name", WRAPPERS)
def test_hostile_calls(name: str) -> None:
    for constrained in (False, True):
        wrapper = make(name, constrained)
        for arguments in HOSTILE_ARGUMENTS:
            function = "probe" if "text" in arguments else "send_message"
            whole = rendered(wrapper, function, "t", arguments)
            for raw in (whole, continued(wrapper, whole), escaped(whole)):
                assert_parses_or_refuses(wrapper, raw)
        for raw in RAW_HOSTILE:
            assert_parses_or_refuses(wrapper, raw)
            assert_parses_or_refuses(wrapper, getattr(wrapper, "call_start", "") + raw)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        to = draw(st.integers(at, min(len(text), at + 12)))
        operation = draw(st.sampled_from(["insert", "delete", "double", "cut", "replace"]))
        if operation == "insert":
            text = text[:at] + draw(text_pieces | messy_text) + text[at:]
        elif operation == "delete":
            text = text[:at] + text[to:]
        elif operation == "double":
            text = text[:to] + text[at:to] + text[to:]
        elif operation == "cut":
            text = text[:at]
        else:
            text = text[:at] + draw(text_pieces) + text[to:]
    return text


@st.composite
def model_outputs(draw: st.DrawFn, wrapper: LLMChatCompletionWrapper) -> str:
    function = draw(st.sampled_from([*sorted(NAMES), "send_msg", ""]))
    schema = next((f["parameters"]["properties"] for f in FUNCTIONS if f["name"] == function), {"message": {}})
    arguments = draw(st.fixed_dictionaries({}, optional={key: json_values for key in schema}))
    whole = rendered(wrapper, function, draw(messy_text | st.none()), arguments)
    whole = escaped(whole) if draw(st.booleans()) else whole
    return draw(mutated(continued(wrapper, whole) if draw(st.booleans()) else whole))


@pytest.mark.parametrize("name", WRAPPERS)
@settings(FAST, max_examples=60)
@given(data=st.data())
def test_mutated_calls_in_each_wrappers_format(name: str, data: st.DataObject) -> None:
    wrapper = make(name, constrained=data.draw(st.booleans()))
    assert_parses_or_refuses(wrapper, data.draw(model_outputs(wrapper)))


@pytest.mark.parametrize("name", WRAPPERS)
@settings(FAST, max_examples=40)
@given(value=json_values, name_key=st.sampled_from(["function", "name", "tool_name"]), ascii=st.booleans())
def test_random_json_values_as_replies_and_as_calls(name: str, value: Any, name_key: str, ascii: bool) -> None:
    wrapper = make(name)
    assert_parses_or_refuses(wrapper, json.dumps(value, ensure_ascii=ascii))
    call = {name_key: "probe", "params": {"text": value, "count": value, "tags": value, "maybe": value}}
    assert_parses_or_refuses(wrapper, json.dumps(call, ensure_ascii=ascii))


@pytest.mark.parametrize("name", WRAPPERS)
@settings(FAST, max_examples=40)
@given(raw=st.lists(any_char | text_pieces | st.sampled_from(list("{}[]\":,'\\ntrue"))).map("".join))
def test_random_text(name: str, raw: str) -> None:
    assert_parses_or_refuses(make(name), raw)


PARSER_FUZZ = {
    "test_calls_cut_at_every_point",
    "test_hostile_calls",
    "test_mutated_calls_in_each_wrappers_format",
    "test_random_json_values_as_replies_and_as_calls",
    "test_random_text",
}


def test_the_fuzz_parses_at_least_10000_inputs(request: pytest.FixtureRequest) -> None:
    # Counts what the tests above parsed in this session: only meaningful when all of them ran (not with -k).
    selected = [item for item in request.session.items if getattr(item, "originalname", "") in PARSER_FUZZ]
    if len(selected) < len(PARSER_FUZZ) * len(WRAPPERS):
        pytest.skip("only some of the fuzz tests ran")
    assert len(parsed_inputs) >= 10_000


# ------------------------------------------------------------------------------------------- the streamer


def stream(raw: str, sizes: list[int]) -> list[str]:
    streamer, deltas, at = ArgumentStreamer(), [], 0
    for size in sizes or [len(raw) or 1]:
        deltas.append(streamer.feed(raw[at : at + size]))
        at += size
    deltas.append(streamer.feed(raw[at:]))
    return deltas


@settings(FAST, max_examples=250)
@given(message=any_text, ascii=st.booleans(), sizes=chunk_sizes)
def test_streamed_message_adds_up_to_the_message_cleaned(message: str, ascii: bool, sizes: list[int]) -> None:
    raw = json.dumps({"function": "send_message", "params": {"message": message}}, ensure_ascii=ascii)
    deltas = stream(raw, sizes)
    assert all(isinstance(delta, str) and encodable(delta) for delta in deltas)
    if not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]", message):
        assert "".join(deltas) == message


@settings(FAST, max_examples=250)
@given(data=st.data(), sizes=chunk_sizes)
def test_the_streamer_takes_any_text(data: st.DataObject, sizes: list[int]) -> None:
    raw = data.draw(model_outputs(make("chatml")) | any_text)
    deltas = stream(raw, sizes)
    assert all(isinstance(delta, str) and encodable(delta) for delta in deltas)



