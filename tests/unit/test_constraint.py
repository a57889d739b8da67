"""Function schemas -> JSON schema -> GBNF.

Besides golden text, the grammars are run through a tiny GBNF recognizer/generator written here (test
only), so we check what they accept, and that everything they can produce is a valid call.
"""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memagent.llm.backends.base import Constraint
from memagent.llm.constraint import (
    build_constraint,
    choice_constraint,
    function_call_schema,
    rule_name,
    schema_to_gbnf,
)
from memagent.llm.parse import parse_function_call


def _fn(name: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    parameters = {"type": "object", "properties": props, "required": required}
    return {"name": name, "description": f"{name} does things.", "parameters": parameters}


S: dict[str, Any] = {"type": "string"}
HB: dict[str, Any] = {"type": "boolean", "description": "Request an immediate heartbeat."}
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
        "core_memory_replace",
        {"name": BLOCK, "old_content": S, "new_content": S, "request_heartbeat": HB},
        ["name", "old_content", "new_content", "request_heartbeat"],
    ),
    _fn(
        "conversation_search",
        {"query": S, "page": {"type": "integer"}, "request_heartbeat": HB},
        ["query", "request_heartbeat"],
    ),
    _fn("archival_memory_insert", {"content": S, "request_heartbeat": HB}, ["content", "request_heartbeat"]),
]
NAMES = [f["name"] for f in FUNCTIONS]


# ------------------------------------------------------------------------ a tiny GBNF engine (test only)

_TOKEN = re.compile(
    r'\s+|(?P<lit>"(?:[^"\\]|\\.)*")|(?P<cls>\[(?:[^\]\\]|\\.)*\])|(?P<ref>[A-Za-z0-9_-]+)'
    r"|(?P<rep>\{\d+(?:,\d*)?\})|(?P<op>[()|?*+])"
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-", "^": "^"}


def _unescape(text: str) -> list[str]:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            if text[i + 1] in "xu":
                width = 2 if text[i + 1] == "x" else 4
                out.append(chr(int(text[i + 2 : i + 2 + width], 16)))
                i += 2 + width
                continue
            out.append(_ESCAPES[text[i + 1]])
            i += 2
            continue
        out.append(text[i])
        i += 1
    return out


def _char_class(body: str) -> tuple[str, bool, list[tuple[str, str]]]:
    negated = body.startswith("^")
    chars = _unescape(body[1:] if negated else body)
    ranges, i = [], 0
    while i < len(chars):
        if i + 2 < len(chars) and chars[i + 1] == "-":
            ranges.append((chars[i], chars[i + 2]))
            i += 3
        else:
            ranges.append((chars[i], chars[i]))
            i += 1
    return ("cls", negated, ranges)


class Gbnf:
    """Parses the GBNF we emit (one rule per line) and matches or samples strings."""

    def __init__(self, text: str) -> None:
        self.rules: dict[str, Any] = {}
        for line in text.strip().splitlines():
            name, body = line.split(" ::= ", 1)
            assert name not in self.rules, f"rule {name} defined twice"
            self.tokens = [(m.lastgroup, m.group(m.lastgroup)) for m in _TOKEN.finditer(body) if m.lastgroup]
            assert "".join(m.group(0) for m in _TOKEN.finditer(body)) == body, f"untokenizable: {body}"
            self.i = 0
            self.rules[name] = self._alt()
            assert self.i == len(self.tokens), f"trailing tokens in {name}"

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _alt(self) -> Any:
        options = [self._seq()]
        while self._peek() == ("op", "|"):
            self.i += 1
            options.append(self._seq())
        return options[0] if len(options) == 1 else ("alt", options)

    def _seq(self) -> Any:
        items = []
        while (tok := self._peek()) is not None and tok not in (("op", "|"), ("op", ")")):
            items.append(self._postfix())
        return ("seq", items)

    def _postfix(self) -> Any:
        kind, text = self.tokens[self.i]
        self.i += 1
        if kind == "lit":
            node: Any = ("lit", "".join(_unescape(text[1:-1])))
        elif kind == "cls":
            node = _char_class(text[1:-1])
        elif kind == "ref":
            node = ("ref", text)
        else:
            assert text == "(", f"unexpected {text}"
            node = self._alt()
            assert self.tokens[self.i] == ("op", ")")
            self.i += 1
        while (tok := self._peek()) is not None and (tok[0] == "rep" or tok[1] in "?*+"):
            self.i += 1
            if tok[0] == "rep":
                low, _, high = tok[1][1:-1].partition(",")
                bounds = (int(low), int(high) if high else (None if "," in tok[1] else int(low)))
            else:
                bounds = {"?": (0, 1), "*": (0, None), "+": (1, None)}[tok[1]]
            node = ("rep", node, *bounds)
        return node

    def refs(self) -> dict[str, set[str]]:
        def walk(node: Any, out: set[str]) -> None:
            if node[0] == "ref":
                out.add(node[1])
            elif node[0] in ("seq", "alt"):
                for child in node[1]:
                    walk(child, out)
            elif node[0] == "rep":
                walk(node[1], out)

        result: dict[str, set[str]] = {}
        for name, node in self.rules.items():
            walk(node, result.setdefault(name, set()))
        return result

    def matches(self, text: str) -> bool:
        self.memo: dict[tuple[str, int], set[int]] = {}
        return len(text) in self._ends(("ref", "root"), text, 0)

    def _ends(self, node: Any, s: str, pos: int) -> set[int]:
        kind = node[0]
        if kind == "lit":
            return {pos + len(node[1])} if s.startswith(node[1], pos) else set()
        if kind == "cls":
            hit = pos < len(s) and any(lo <= s[pos] <= hi for lo, hi in node[2])
            return {pos + 1} if pos < len(s) and hit != node[1] else set()
        if kind == "ref":
            key = (node[1], pos)
            if key not in self.memo:
                self.memo[key] = self._ends(self.rules[node[1]], s, pos)
            return self.memo[key]
        if kind == "alt":
            return set().union(*(self._ends(child, s, pos) for child in node[1]))
        if kind == "seq":
            frontier = {pos}
            for child in node[1]:
                frontier = set().union(*(self._ends(child, s, p) for p in frontier))
            return frontier
        _, child, low, high = node
        result, frontier, count = ({pos} if low == 0 else set()), {pos}, 0
        while frontier and (high is None or count < high) and count <= len(s):
            frontier = set().union(*(self._ends(child, s, p) for p in frontier))
            count += 1
            if count >= low:
                result |= frontier
        return result

    def sample(self, rnd: random.Random, node: Any = ("ref", "root")) -> str:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "cls":
            chars = "aZ0129 '{}[]:,é☃\u2028\"\\\n\x00\x7f/"
            pool = [c for c in chars if any(lo <= c <= hi for lo, hi in node[2]) != node[1]]
            return rnd.choice(pool)
        if kind == "ref":
            return self.sample(rnd, self.rules[node[1]])
        if kind == "alt":
            return self.sample(rnd, rnd.choice(node[1]))
        if kind == "seq":
            return "".join(self.sample(rnd, child) for child in node[1])
        _, child, low, high = node
        return "".join(self.sample(rnd, child) for _ in range(rnd.randint(low, high if high is not None else low + 6)))


# ------------------------------------------------------------------------------------- the JSON schema


def test_schema_params_mode_orders_thoughts_first_then_required_then_optional() -> None:
    schema = function_call_schema(FUNCTIONS)
    assert [alt["properties"]["function"]["const"] for alt in schema["anyOf"]] == NAMES
    search = schema["anyOf"][NAMES.index("conversation_search")]
    assert list(search["properties"]) == ["function", "params"]
    assert search["required"] == ["function", "params"]
    assert search["additionalProperties"] is False
    args = search["properties"]["params"]
    assert list(args["properties"]) == ["inner_thoughts", "query", "request_heartbeat", "page"]
    assert args["required"] == ["inner_thoughts", "query", "request_heartbeat"]
    assert args["additionalProperties"] is False
    assert args["properties"]["inner_thoughts"]["type"] == "string"
    assert args["properties"]["page"] == {"type": "integer"}


def test_schema_top_mode_and_other_key_names() -> None:
    schema = function_call_schema(FUNCTIONS, name_key="name", args_key="arguments", thoughts="top")
    send = schema["anyOf"][0]
    assert list(send["properties"]) == ["inner_thoughts", "name", "arguments"]
    assert send["required"] == ["inner_thoughts", "name", "arguments"]
    assert send["properties"]["name"] == {"type": "string", "const": "send_message"}
    assert list(send["properties"]["arguments"]["properties"]) == ["message"]


def test_schema_without_thoughts_has_no_inner_thoughts_anywhere() -> None:
    schema = function_call_schema(FUNCTIONS, thoughts=None)
    assert "inner_thoughts" not in json.dumps(schema)
    assert schema["anyOf"][2]["properties"]["params"]["required"] == ["name", "content", "request_heartbeat"]


def test_schema_heartbeat_functions_adds_missing_flag_only() -> None:
    schema = function_call_schema(FUNCTIONS, heartbeat_functions={"send_message", "core_memory_append"})
    send_args = schema["anyOf"][0]["properties"]["params"]
    assert list(send_args["properties"]) == ["inner_thoughts", "message", "request_heartbeat"]
    assert send_args["required"] == ["inner_thoughts", "message", "request_heartbeat"]
    append_args = schema["anyOf"][2]["properties"]["params"]
    assert list(append_args["properties"]).count("request_heartbeat") == 1
    assert "request_heartbeat" not in schema["anyOf"][1]["properties"]["params"]["properties"]


def test_schema_does_not_mutate_input_and_closes_nested_objects() -> None:
    nested = _fn("set_prefs", {"prefs": {"type": "object", "properties": {"tea": S}}}, ["prefs"])
    functions = [*FUNCTIONS, nested]
    before = copy.deepcopy(functions)
    schema = function_call_schema(functions)
    assert functions == before
    prefs = schema["anyOf"][-1]["properties"]["params"]["properties"]["prefs"]
    assert prefs == {"type": "object", "properties": {"tea": S}, "additionalProperties": False}


@pytest.mark.parametrize(
    ("functions", "kwargs"),
    [([], {}), (FUNCTIONS, {"thoughts": "inside"}), (FUNCTIONS, {"name_key": "x", "args_key": "x"})],
)
def test_schema_rejects_bad_arguments(functions: list[Any], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        function_call_schema(functions, **kwargs)


# ------------------------------------------------------------------------------------------- GBNF text

TINY = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "string", "enum": ["x", "y"]}},
    "required": ["a"],
    "additionalProperties": False,
}
TINY_GBNF = r"""root ::= "{" "\"a\":" sp integer ("," sp "\"b\":" sp root-b)? "}"
sp ::= " "?
integer ::= "-"? ([0-9] | [1-9] [0-9]{0,15})
root-b ::= "\"x\"" | "\"y\""
"""


def test_golden_grammar_for_a_tiny_schema() -> None:
    assert schema_to_gbnf(TINY) == TINY_GBNF
    grammar = Gbnf(TINY_GBNF)
    assert grammar.matches('{"a":1}') and grammar.matches('{"a": -20, "b": "y"}')
    assert not grammar.matches('{"b": "y", "a": 1}') and not grammar.matches('{"a": 01}')


def test_golden_choice_constraint() -> None:
    constraint = choice_constraint(["yes", "no", "yes", 'say "hi"'])
    assert constraint == Constraint(
        json_schema={"type": "string", "enum": ["yes", "no", 'say "hi"']},
        gbnf='root ::= "\\"yes\\"" | "\\"no\\"" | "\\"say \\\\\\"hi\\\\\\"\\""\n',
    )
    grammar = Gbnf(constraint.gbnf)
    assert grammar.matches('"no"') and grammar.matches('"say \\"hi\\""')
    assert not grammar.matches("no") and not grammar.matches('"maybe"')
    with pytest.raises(ValueError):
        choice_constraint([])


def test_build_constraint_carries_both_forms() -> None:
    schema = function_call_schema(FUNCTIONS[:1])
    constraint = build_constraint(schema)
    assert constraint.json_schema == schema
    assert constraint.gbnf == schema_to_gbnf(schema)
    assert constraint.gbnf.startswith("root ::= send-message-call\n")


@pytest.mark.parametrize("thoughts", ["params", "top", None])
def test_full_grammar_structure(thoughts: str | None) -> None:
    text = schema_to_gbnf(function_call_schema(FUNCTIONS, thoughts=thoughts))  # type: ignore[arg-type]
    lines = text.splitlines()
    names = [line.split(" ::= ")[0] for line in lines]
    bodies = [line.split(" ::= ", 1)[1] for line in lines]
    assert names[0] == "root" and text.endswith("\n")
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in names)
    assert len(set(names)) == len(names) and len(set(bodies)) == len(bodies), "rules are deduplicated"
    refs = Gbnf(text).refs()
    used = set().union(*refs.values())
    assert used <= set(names), f"undefined rules: {used - set(names)}"
    assert set(names) - used == {"root"}, "every rule is reachable"
    assert bodies[0] == " | ".join(f"{rule_name(n)}-call" for n in NAMES)
    assert 'char ::= [^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})' in lines
    assert 'sp ::= " "?' in lines
    assert 'core-memory-append-args-name ::= "\\"persona\\"" | "\\"human\\""' in lines
    assert text.count('"\\"persona\\""') == 1, "the enum shared by two functions is one rule"
    for line in lines:
        assert not re.search(r"(\S+\?) \1", line), "no x? x? chains"
        assert "[ \\t\\n]" not in line, "no unbounded newline whitespace"
        assert not line.rstrip().endswith(" sp"), "nothing optional after the closing brace"


def _call(name: str, args: dict[str, Any], thoughts: str = "Thinking.") -> dict[str, Any]:
    return {"function": name, "params": {"inner_thoughts": thoughts, **args}}


GOOD_CALLS = [
    _call("send_message", {"message": 'Hi Chad! "Quoted"\n\ttab \u00e9 \u2603'}),
    _call("pause_heartbeats", {"minutes": -15}),
    _call("core_memory_append", {"name": "human", "content": "Likes tea.", "request_heartbeat": True}),
    _call(
        "core_memory_replace",
        {"name": "persona", "old_content": "a", "new_content": "", "request_heartbeat": False},
    ),
    _call("conversation_search", {"query": "tea", "request_heartbeat": True}),
    _call("conversation_search", {"query": "tea", "request_heartbeat": True, "page": 2}),
    _call("archival_memory_insert", {"content": "{not json} [x]", "request_heartbeat": False}, thoughts=""),
]


@pytest.mark.parametrize("call", GOOD_CALLS, ids=lambda c: c["function"])
def test_grammar_accepts_valid_calls_compact_and_spaced(call: dict[str, Any]) -> None:
    grammar = Gbnf(schema_to_gbnf(function_call_schema(FUNCTIONS)))
    assert grammar.matches(json.dumps(call, separators=(",", ":")))
    assert grammar.matches(json.dumps(call))
    assert grammar.matches(json.dumps(call, ensure_ascii=False))


BAD = {
    "trailing space": '{"function": "send_message", "params": {"inner_thoughts": "t", "message": "m"}} ',
    "trailing newline": '{"function":"send_message","params":{"inner_thoughts":"t","message":"m"}}\n',
    "space after brace": '{ "function": "send_message", "params": {"inner_thoughts": "t", "message": "m"}}',
    "two spaces": '{"function":  "send_message", "params": {"inner_thoughts": "t", "message": "m"}}',
    "raw newline": '{"function": "send_message", "params": {"inner_thoughts": "t", "message": "a\nb"}}',
    "bad escape": '{"function": "send_message", "params": {"inner_thoughts": "t", "message": "\\_"}}',
    "unknown function": '{"function": "send_msg", "params": {"inner_thoughts": "t", "message": "m"}}',
    "missing thoughts": '{"function": "send_message", "params": {"message": "m"}}',
    "missing required": '{"function": "conversation_search", "params": {"inner_thoughts": "", "query": "q"}}',
    "wrong order": '{"params": {"inner_thoughts": "t", "message": "m"}, "function": "send_message"}',
    "extra key": '{"function": "send_message", "params": {"inner_thoughts": "t", "message": "m", "x": 1}}',
    "enum violation": (
        '{"function": "core_memory_append", "params": {"inner_thoughts": "t", "name": "section", '
        '"content": "c", "request_heartbeat": true}}'
    ),
    "string for int": '{"function": "pause_heartbeats", "params": {"inner_thoughts": "t", "minutes": "5"}}',
    "leading zero": '{"function": "pause_heartbeats", "params": {"inner_thoughts": "t", "minutes": 05}}',
}


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_grammar_rejects_invalid_calls(text: str) -> None:
    assert not Gbnf(schema_to_gbnf(function_call_schema(FUNCTIONS))).matches(text)


def test_grammar_top_thoughts_mode_accepts_its_own_shape_only() -> None:
    schema = function_call_schema(FUNCTIONS, name_key="name", args_key="arguments", thoughts="top")
    grammar = Gbnf(schema_to_gbnf(schema))
    call = {"inner_thoughts": "t", "name": "send_message", "arguments": {"message": "m"}}
    assert grammar.matches(json.dumps(call))
    assert not grammar.matches(json.dumps({"name": "send_message", "arguments": {"message": "m"}}))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), thoughts=st.sampled_from(["params", "top", None]))
def test_everything_the_grammar_produces_is_a_valid_call(seed: int, thoughts: str | None) -> None:
    grammar = Gbnf(schema_to_gbnf(function_call_schema(FUNCTIONS, thoughts=thoughts)))  # type: ignore[arg-type]
    text = grammar.sample(random.Random(seed))
    assert grammar.matches(text)
    value = json.loads(text)  # strict JSON, no repairs needed
    call = parse_function_call(text, FUNCTIONS)
    assert call.repairs == ()
    assert call.name == value["function"]
    params = dict(value["params"])
    assert call.inner_thoughts == (
        params.pop("inner_thoughts", None) if thoughts == "params" else value.get("inner_thoughts")
    )
    assert call.arguments == params


# ------------------------------------------------------------------------------ other schema features


def test_dates_are_held_to_yyyy_mm_dd() -> None:
    from memagent.functions.memory import builtin_functions

    search_date = builtin_functions().get("conversation_search_date")
    assert search_date is not None
    properties = search_date.schema["parameters"]["properties"]
    assert properties["start_date"]["format"] == properties["end_date"]["format"] == "date"
    grammar = Gbnf(schema_to_gbnf(function_call_schema([search_date.schema])))

    def call(start: str) -> str:
        params = {"inner_thoughts": "Look back.", "start_date": start, "end_date": "2026-12-02",
                  "request_heartbeat": True}
        return json.dumps({"function": "conversation_search_date", "params": params})

    assert grammar.matches(call("2026-01-31"))
    for bad in ("yesterday", "2026-13-01", "2026-12-00", "2026-12-32", "2026-12-02T10:00", "26-12-02", "0000-01-01"):
        assert not grammar.matches(call(bad)), bad
    rnd = random.Random(7)
    shape = re.compile(r"[12]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")
    for _ in range(40):  # everything the grammar can write has the shape, and ends
        params = json.loads(grammar.sample(rnd))["params"]
        assert shape.fullmatch(params["start_date"]) and shape.fullmatch(params["end_date"]), params


def _filter_forms() -> list[dict[str, Any]]:
    from memagent.functions.memory import builtin_functions

    registry = builtin_functions()
    keys = ["archival_memory_insert+tags", "archival_memory_search+filters", "conversation_search+filters"]
    return [function.schema for function in registry.select(keys)]


def test_a_call_may_leave_out_every_optional_filter_and_one_with_tags_parses() -> None:
    schemas = _filter_forms()
    grammar = Gbnf(schema_to_gbnf(function_call_schema(schemas)))

    def text(function: str, **params: Any) -> str:
        return json.dumps({"function": function, "params": {"inner_thoughts": "Note it.", **params}})

    bare = text("archival_memory_search", query="boats", request_heartbeat=True)
    tagged = text("archival_memory_insert", content="Ann sails", request_heartbeat=False, tags=["ann", "boats"])
    ranged = text("conversation_search", query="boats", request_heartbeat=True, page=1, role="user",
                  start_date="2026-11-01", end_date="2026-12-02")
    for good in (bare, tagged, ranged, text("archival_memory_insert", content="x", request_heartbeat=True, tags=[])):
        assert grammar.matches(good), good
    call = parse_function_call(tagged, schemas)
    assert (call.name, call.arguments["tags"], call.repairs) == ("archival_memory_insert", ["ann", "boats"], ())
    for bad in (
        text("conversation_search", query="q", request_heartbeat=True, role="system"),  # the roles are an enum
        text("archival_memory_insert", content="x", request_heartbeat=True, tags="ann"),  # a list, not a string
        text("archival_memory_insert", content="x", request_heartbeat=True, tags=[1]),
        text("archival_memory_insert", content="x", request_heartbeat=True, tags=[f"t{i}" for i in range(17)]),
        text("archival_memory_search", query="q", request_heartbeat=True, start_date="last week"),
        text("archival_memory_search", query="q", request_heartbeat=True, end_date="2026-12-02", page=0),  # order
    ):
        assert not grammar.matches(bad), bad
    rnd = random.Random(11)
    for _ in range(40):  # whatever the grammar writes parses without a repair
        sample = grammar.sample(rnd)
        assert parse_function_call(sample, schemas).repairs == (), sample


def test_string_lengths_use_bounded_repetition() -> None:
    text = schema_to_gbnf(
        {
            "type": "object",
            "properties": {
                "s": {"type": "string", "maxLength": 10},
                "t": {"type": "string", "minLength": 2, "maxLength": 5},
            },
            "required": ["s", "t"],
        }
    )
    assert 'root-s ::= "\\"" char{0,10} "\\""' in text and 'root-t ::= "\\"" char{2,5} "\\""' in text
    grammar = Gbnf(text)
    assert grammar.matches('{"s": "0123456789", "t": "ab"}')
    assert not grammar.matches('{"s": "0123456789X", "t": "ab"}') and not grammar.matches('{"s": "", "t": "a"}')


def test_enum_of_json_scalars_and_non_ascii_const() -> None:
    text = schema_to_gbnf({"anyOf": [{"enum": [1, None, True, "a\nb"]}, {"const": "café"}]})
    grammar = Gbnf(text)
    for ok in ("1", "null", "true", '"a\\nb"', '"café"'):
        assert grammar.matches(ok), ok
    assert not grammar.matches('"a\nb"') and not grammar.matches('"cafe"') and not grammar.matches("false")
    assert '"\\"café\\""' in text


def test_arrays_anyof_type_lists_and_free_form_values() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
            "ids": {"type": "array", "items": {"type": "integer"}},
            "maybe": {"type": ["number", "null"]},
            "either": {"oneOf": [{"type": "boolean"}, {"type": "string", "const": "auto"}]},
            "free": {},
        },
        "required": ["tags", "ids", "maybe", "either", "free"],
    }
    grammar = Gbnf(schema_to_gbnf(schema))
    good = {"tags": ["a", "b"], "ids": [], "maybe": -1.5e3, "either": "auto", "free": {"x": [1, {"y": None}]}}
    assert grammar.matches(json.dumps(good))
    assert grammar.matches(json.dumps({**good, "maybe": None, "either": False, "free": "s"}))
    assert not grammar.matches(json.dumps({**good, "tags": []}))
    assert not grammar.matches(json.dumps({**good, "tags": ["a", "b", "c", "d"]}))
    assert not grammar.matches(json.dumps({**good, "either": "manual"}))


def test_all_optional_properties_never_leave_a_stray_comma() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}},
    }
    grammar = Gbnf(schema_to_gbnf(schema))
    for ok in ("{}", '{"a":1}', '{"b":1}', '{"a":1,"c":3}', '{"a":1, "b":2, "c":3}'):
        assert grammar.matches(ok), ok
    for bad in ('{,"b":1}', '{"a":1,}', '{"b":1,"a":1}'):
        assert not grammar.matches(bad), bad


def test_rule_names_are_sanitized_and_collisions_get_suffixes() -> None:
    schema = {
        "type": "object",
        "properties": {
            "Weird Name!!": {"enum": ["p"]},
            "a b": {"enum": ["x", "y"]},
            "a-b": {"enum": ["z", "w"]},
            "same": {"enum": ["x", "y"]},
        },
        "required": ["Weird Name!!", "a b", "a-b", "same"],
    }
    text = schema_to_gbnf(schema)
    assert 'root-a-b ::= "\\"x\\"" | "\\"y\\""' in text and 'root-a-b-2 ::= "\\"z\\"" | "\\"w\\""' in text
    assert '"\\"same\\":" sp root-a-b' in text, "identical enum reuses the existing rule"
    assert '"\\"Weird Name!!\\":" sp "\\"p\\""' in text
    assert rule_name("send_message args") == "send-message-args" and rule_name("__") == "rule"


@pytest.mark.parametrize(
    "schema",
    [{"type": "foo"}, {"enum": []}, {"anyOf": []}, "string", {"type": "array", "minItems": 3, "maxItems": 1}],
)
def test_unsupported_schemas_raise(schema: Any) -> None:
    with pytest.raises(ValueError):
        schema_to_gbnf(schema)
