"""Function schemas -> one JSON schema -> a GBNF grammar, so a backend can only emit a valid call.

We write the GBNF ourselves instead of importing llama.cpp's converter because the grammar shape matters
for small models: properties in a fixed order (inner thoughts before the action), a string rule that
cannot produce raw control characters, compact bounded whitespace and nothing after the root value (an
unbounded trailing `ws` lets greedy models emit spaces until max_tokens). The JSON schema form is kept
beside it for backends that take `json_schema`/`format` instead of GBNF.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from memagent.llm.types import Constraint

ThoughtsPlacement = Literal["top", "params"]

INNER_THOUGHTS = "inner_thoughts"
HEARTBEAT = "request_heartbeat"
# Bounds on generated strings. Small models fall into repetition loops inside a string ("I love sailing.
# I love sailing. ..."); a bound makes the grammar close the string, so the call completes instead of
# running into the token limit. MemGPT asks for inner thoughts under 50 words.
THOUGHTS_MAX_CHARS = 400
ARGUMENT_MAX_CHARS = 2000
ARGUMENT_MAX_ITEMS = 16
"""Items of a list argument (and each string item at most ARGUMENT_MAX_CHARS): a loop can't run on in a list either."""
_THOUGHTS_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": "Deep inner monologue private to you only.",
    "maxLength": THOUGHTS_MAX_CHARS,
}
_HEARTBEAT_SCHEMA: dict[str, Any] = {
    "type": "boolean",
    "description": "Request an immediate heartbeat after the function runs, to chain another call.",
}

# JSON primitives. `char` excludes `"`, `\` and control characters and allows every JSON escape, so a
# constrained string is always valid JSON. Digit runs are bounded so a number can't run on forever
# (and stays finite: 16 digits, exponent below 100).
_PRIMITIVES: dict[str, str] = {
    "char": r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "string": r'"\"" {char}* "\""',
    "integer": '"-"? ([0-9] | [1-9] [0-9]{0,15})',
    "number": '"-"? ([0-9] | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?',
    "boolean": '"true" | "false"',
    "null": '"null"',
}
# String formats the grammar holds the model to (JSON Schema's `format`). A date is YYYY-MM-DD, year 1000-2999,
# month 01-12, day 01-31: a model left free writes "yesterday", or never ends the string. (A day its month
# doesn't have, 02-30, gets through; the function says so.)
_FORMATS: dict[str, str] = {
    "date": r'"\"" [12] [0-9]{3} "-" ("0" [1-9] | "1" [0-2]) "-" ("0" [1-9] | [12] [0-9] | "3" [01]) "\""',
}
_SPACE_BODY = '" "?'
_ATOM = re.compile(r'^(?:[a-z0-9-]+|"(?:[^"\\]|\\.)*")$')


def function_call_schema(
    functions: Sequence[Mapping[str, Any]],
    *,
    name_key: str = "function",
    args_key: str = "params",
    thoughts: ThoughtsPlacement | None = "params",
    heartbeat_functions: Collection[str] | None = None,
) -> dict[str, Any]:
    """One `anyOf` alternative per function: `{[inner_thoughts,] name_key: const, args_key: {...}}`.

    Property order is the order a grammar forces, so inner thoughts come first (the model reasons before
    it acts). In each args object required parameters come first, then optional ones, both in the
    function's declared order: the same order llama.cpp's own converter forces, so a backend compiling
    the JSON schema itself gets the same shape as our GBNF. `heartbeat_functions` names functions that
    should get a required boolean `request_heartbeat` if their schema lacks it (None: add nothing).
    """
    if thoughts not in ("top", "params", None):
        raise ValueError(f"thoughts must be 'top', 'params' or None, not {thoughts!r}")
    if not functions:
        raise ValueError("function_call_schema needs at least one function")
    if name_key == args_key:
        raise ValueError("name_key and args_key must differ")
    heartbeat = set(heartbeat_functions or ())
    alternatives = []
    for function in functions:
        name = function["name"]
        properties: dict[str, Any] = {}
        if thoughts == "top":
            properties[INNER_THOUGHTS] = dict(_THOUGHTS_SCHEMA)
        properties[name_key] = {"type": "string", "const": name}
        properties[args_key] = _args_schema(function, thoughts == "params", name in heartbeat)
        alternatives.append(_closed_object(properties, list(properties), title=f"{name} call"))
    return {"anyOf": alternatives}


def _args_schema(function: Mapping[str, Any], with_thoughts: bool, add_heartbeat: bool) -> dict[str, Any]:
    """The arguments object of one function: [inner_thoughts], required params, optional params."""
    name = function["name"]
    parameters = function.get("parameters") or {}
    declared: dict[str, Any] = dict(parameters.get("properties") or {})
    required_names = set(parameters.get("required") or ())
    if add_heartbeat and HEARTBEAT not in declared:
        declared[HEARTBEAT] = dict(_HEARTBEAT_SCHEMA)
        required_names.add(HEARTBEAT)
    if with_thoughts and INNER_THOUGHTS in declared:
        raise ValueError(f"function {name!r} already has an {INNER_THOUGHTS!r} parameter")
    required = [key for key in declared if key in required_names]
    optional = [key for key in declared if key not in required_names]
    properties: dict[str, Any] = {INNER_THOUGHTS: dict(_THOUGHTS_SCHEMA)} if with_thoughts else {}
    for key in required + optional:
        properties[key] = _close_nested(copy.deepcopy(declared[key]))
        _bound(properties[key])
    head = [INNER_THOUGHTS] if with_thoughts else []
    return _closed_object(properties, head + required, title=f"{name} args")


def _bound(schema: dict[str, Any]) -> None:
    """Bound a free string argument, and a list argument and its string items (see ARGUMENT_MAX_CHARS)."""
    if schema.get("type") == "string" and "enum" not in schema:
        schema.setdefault("maxLength", ARGUMENT_MAX_CHARS)
    elif schema.get("type") == "array":
        schema.setdefault("maxItems", ARGUMENT_MAX_ITEMS)
        if isinstance(schema.get("items"), dict):
            _bound(schema["items"])


def _closed_object(properties: dict[str, Any], required: list[str], *, title: str) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _close_nested(schema: Any) -> Any:
    """Set `additionalProperties: false` on nested objects that list properties (matches our grammar)."""
    if isinstance(schema, dict):
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
        for value in schema.values():
            _close_nested(value)
    elif isinstance(schema, list):
        for item in schema:
            _close_nested(item)
    return schema


def schema_to_gbnf(schema: Mapping[str, Any]) -> str:
    """Compile the JSON-schema subset we generate into llama.cpp GBNF (root rule `root`).

    Raises ValueError for schema features the subset doesn't cover, rather than silently producing a
    looser grammar than the schema promises.
    """
    return _GrammarBuilder().build(schema)


def build_constraint(schema: Mapping[str, Any]) -> Constraint:
    """Both forms of one schema, so each backend can take whichever it supports."""
    return Constraint(json_schema=dict(schema), gbnf=schema_to_gbnf(schema))


def choice_constraint(options: Sequence[str]) -> Constraint:
    """A JSON string that must be one of `options` (Backend.choose_from_options strips the quotes)."""
    unique = list(dict.fromkeys(options))
    if not unique or not all(isinstance(option, str) for option in unique):
        raise ValueError("choice_constraint needs at least one option, all strings")
    return build_constraint({"type": "string", "enum": unique})


def _gbnf_quote(text: str) -> str:
    """`text` as a GBNF string literal (UTF-8 stays raw: llama.cpp decodes it)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _literal(value: Any) -> str:
    """The GBNF literal matching exactly the compact JSON encoding of `value`."""
    return _gbnf_quote(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def rule_name(text: str) -> str:
    """A valid GBNF identifier (lowercase letters, digits, '-') derived from any text."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "rule"


class _GrammarBuilder:
    """Walks a schema, emitting one named rule per composite sub-schema; identical bodies share a rule."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self.by_body: dict[str, str] = {}
        self.taken: set[str] = {"root"}
        self.any_rules: tuple[str, str] | None = None  # (value, object) rule names once emitted

    def build(self, schema: Mapping[str, Any]) -> str:
        root = self._body(schema, "root")
        lines = [f"root ::= {root}"] + [f"{name} ::= {body}" for name, body in self.rules.items()]
        return "\n".join(lines) + "\n"

    def _reserve(self, name: str) -> str:
        unique, n = name, 2
        while unique in self.taken:
            unique, n = f"{name}-{n}", n + 1
        self.taken.add(unique)
        return unique

    def _add(self, name: str, body: str) -> str:
        if body in self.by_body:
            return self.by_body[body]
        unique = self._reserve(name)
        self.rules[unique] = body
        self.by_body[body] = unique
        return unique

    def _primitive(self, kind: str) -> str:
        if kind == "string":
            return self._add("string", _PRIMITIVES["string"].format(char=self._primitive("char")))
        return self._add(kind, _PRIMITIVES[kind])

    def _space(self) -> str:
        return self._add("sp", _SPACE_BODY)

    def _ref(self, schema: Any, hint: str) -> str:
        """An expression for `schema` usable inside a sequence: a rule name or a single literal."""
        if isinstance(schema, Mapping) and isinstance(schema.get("title"), str):
            hint = rule_name(schema["title"])
        body = self._body(schema, hint)
        return body if _ATOM.match(body) else self._add(hint, body)

    def _body(self, schema: Any, hint: str) -> str:
        if not isinstance(schema, Mapping):
            raise ValueError(f"{hint}: a schema must be an object, got {schema!r}")
        if "const" in schema:
            return _literal(schema["const"])
        if "enum" in schema:
            if not schema["enum"]:
                raise ValueError(f"{hint}: empty enum")
            return " | ".join(dict.fromkeys(_literal(value) for value in schema["enum"]))
        alternatives = schema.get("anyOf", schema.get("oneOf"))
        if alternatives is not None:
            if not alternatives:
                raise ValueError(f"{hint}: empty anyOf/oneOf")
            return " | ".join(dict.fromkeys(self._ref(alt, f"{hint}-{i}") for i, alt in enumerate(alternatives)))
        kind = schema.get("type")
        if isinstance(kind, list):
            return " | ".join(self._ref({**schema, "type": k}, f"{hint}-{k}") for k in kind)
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, hint)
        if kind == "array":
            return self._array(schema, hint)
        if kind == "string":
            return self._string(schema)
        if kind in ("integer", "number", "boolean", "null"):
            return self._primitive(kind)
        if kind is None and not set(schema) - {"title", "description"}:
            return self._any_value()
        raise ValueError(f"{hint}: unsupported schema {dict(schema)!r}")

    def _string(self, schema: Mapping[str, Any]) -> str:
        if schema.get("format") in _FORMATS:
            return self._add(rule_name(schema["format"]), _FORMATS[schema["format"]])
        low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
        if low == 0 and high is None:
            return self._primitive("string")
        repeat = f"{{{low},}}" if high is None else f"{{{low},{int(high)}}}"
        return rf'"\"" {self._primitive("char")}{repeat} "\""'

    def _object(self, schema: Mapping[str, Any], hint: str) -> str:
        properties = schema.get("properties") or {}
        if not properties:
            return '"{" "}"' if schema.get("additionalProperties") is False else self._any_object()
        required = set(schema.get("required") or ())
        sp = self._space()
        members = [
            (
                f"{_gbnf_quote(json.dumps(key, ensure_ascii=False) + ':')} {sp} "
                f"{self._ref(sub, f'{hint}-{rule_name(key)}')}",
                key in required,
            )
            for key, sub in properties.items()
        ]
        return f'"{{" {_members(members, sp)} "}}"'

    def _array(self, schema: Mapping[str, Any], hint: str) -> str:
        item = self._ref(schema["items"], f"{hint}-item") if "items" in schema else self._any_value()
        low, high = int(schema.get("minItems", 0)), schema.get("maxItems")
        if high is not None and int(high) < max(low, 1):
            if int(high) == 0 and low == 0:
                return '"[" "]"'
            raise ValueError(f"{hint}: maxItems below minItems")
        more_low = max(low - 1, 0)
        unbounded = "*" if more_low == 0 else f"{{{more_low},}}"
        repeat = unbounded if high is None else f"{{{more_low},{int(high) - 1}}}"
        items = item if repeat == "{0,0}" else f'{item} ("," {self._space()} {item}){repeat}'
        return f'"[" {items} "]"' if low >= 1 else f'"[" ({items})? "]"'

    def _any_value(self) -> str:
        """Free-form JSON (schemas like `{}`): recursive rules, named before their bodies exist."""
        if self.any_rules is not None:
            return self.any_rules[0]
        sp, string = self._space(), self._primitive("string")
        scalars = [string, self._primitive("number"), self._primitive("boolean"), self._primitive("null")]
        value, obj, arr = (self._reserve(name) for name in ("value", "object", "array"))
        member = f'{string} ":" {sp} {value}'
        self.rules[value] = " | ".join([obj, arr, *scalars])
        self.rules[obj] = f'"{{" ({member} ("," {sp} {member})*)? "}}"'
        self.rules[arr] = f'"[" ({value} ("," {sp} {value})*)? "]"'
        self.any_rules = (value, obj)
        return value

    def _any_object(self) -> str:
        self._any_value()
        assert self.any_rules is not None
        return self.any_rules[1]


def _members(members: list[tuple[str, bool]], sp: str) -> str:
    """Object members in declared order; optional ones may be skipped without leaving stray commas."""
    if not members:
        return ""
    first_required = next((i for i, (_, required) in enumerate(members) if required), None)
    if first_required is None:
        # All optional: pick which one comes first, the later ones each may follow with a comma.
        choices = [
            " ".join([member] + [f'("," {sp} {later})?' for later, _ in members[i + 1 :]])
            for i, (member, _) in enumerate(members)
        ]
        return f"({' | '.join(choices)})?"
    parts = [f'({member} "," {sp})?' for member, _ in members[:first_required]]
    parts.append(members[first_required][0])
    for member, required in members[first_required + 1 :]:
        parts.append(f'"," {sp} {member}' if required else f'("," {sp} {member})?')
    return " ".join(parts)
