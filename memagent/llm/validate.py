"""Checking a parsed call against the offered functions: its name, its arguments and their types.

The second half of the shared parser (see ``parse.py``): the call's name is matched leniently, unknown
and null arguments are dropped, `request_heartbeat` gets its default, scalars are coerced where that is
safe ("2" -> 2) and enum values are matched ignoring case. Each bend is named as a repair. Every
failure is an LLMOutputError whose short message goes back to the model as a correction.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from memagent.errors import LLMOutputError

HEARTBEAT = "request_heartbeat"


def dump(value: Any) -> str:
    """Any value as JSON text, for error messages: never raises on odd types."""
    return json.dumps(value, ensure_ascii=False, default=str)


_FAIL = object()
_INTEGER = re.compile(r"\s*-?\d{1,18}\s*")
_NUMBER = re.compile(r"\s*-?\d{1,18}(\.\d+)?([eE][-+]?\d{1,3})?\s*")
_PYTHON_TYPES = {"string": str, "boolean": bool, "array": list, "object": dict, "null": type(None)}
_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "string": "a string",
    "array": "a JSON list",
    "object": "a JSON object",
    "null": "null",
}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":  # an int is finite however long (math.isfinite would overflow converting it to float)
        return _is_type(value, "integer") or isinstance(value, float) and math.isfinite(value)
    python_type = _PYTHON_TYPES.get(kind)
    return python_type is not None and isinstance(value, python_type)


def _coerce(value: Any, kind: str) -> Any:
    """The safe scalar conversions small models need ("2" -> 2, "true" -> True, 2 -> "2"), else _FAIL."""
    if kind == "integer":
        if isinstance(value, str) and _INTEGER.fullmatch(value):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind == "number" and isinstance(value, str) and _NUMBER.fullmatch(value):
        return int(value) if _INTEGER.fullmatch(value) else float(value)
    elif kind == "boolean" and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    elif kind == "string" and _is_type(value, "number"):
        return str(value)
    elif kind in ("array", "object") and isinstance(value, str):
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            return _FAIL
        return decoded if _is_type(decoded, kind) else _FAIL
    return _FAIL


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b or (_is_type(a, "number") and _is_type(b, "number") and a == b)


def _check(value: Any, schema: Mapping[str, Any], where: str) -> tuple[Any, bool]:
    """Check one value against its schema, coercing where safe. Returns (value, coerced)."""
    if not isinstance(schema, Mapping):
        return value, False
    alternatives = schema.get("anyOf", schema.get("oneOf"))
    if alternatives:
        errors = []
        for alternative in alternatives:
            try:
                return _check(value, alternative, where)
            except LLMOutputError as err:
                errors.append(str(err))
        raise LLMOutputError(errors[0], dump(value))
    coerced = False
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    if kinds and not any(_is_type(value, kind) for kind in kinds):
        value = next((c for c in (_coerce(value, k) for k in kinds) if c is not _FAIL), _FAIL)
        if value is _FAIL:
            words = " or ".join(_TYPE_WORDS.get(kind, kind) for kind in kinds)
            raise LLMOutputError(f"{where} must be {words}.", "")
        coerced = True
    allowed = schema["enum"] if "enum" in schema else [schema["const"]] if "const" in schema else None
    if allowed is not None and not any(_same(value, option) for option in allowed):
        text = value.strip().lower() if isinstance(value, str) else None
        folded = [option for option in allowed if isinstance(option, str) and option.lower() == text]
        if len(folded) != 1:
            options = ", ".join(dump(option) for option in allowed)
            raise LLMOutputError(f"{where} must be one of: {options} (got {dump(value)[:40]}).", "")
        value, coerced = folded[0], True
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        checked = [_check(item, schema["items"], f"{where}[{i}]") for i, item in enumerate(value)]
        value, coerced = [item for item, _ in checked], coerced or any(c for _, c in checked)
    elif isinstance(value, dict) and isinstance(schema.get("properties"), Mapping):
        value = dict(value)
        for key, sub in schema["properties"].items():
            if key in value:
                value[key], changed = _check(value[key], sub, f"{where}.{key}")
                coerced = coerced or changed
    return value, coerced


def _accepts_null(schema: Mapping[str, Any]) -> bool:
    try:
        _check(None, schema, "")
    except LLMOutputError:
        return False
    return True


def _function_schemas(functions: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """name -> parameters schema; accepts plain function schemas and `{"type": "function", ...}` tools."""
    out: dict[str, Mapping[str, Any]] = {}
    for function in functions:
        if isinstance(function.get("function"), Mapping):
            function = function["function"]
        out[function["name"]] = function.get("parameters") or {}
    return out


def validate_call(
    name: str, arguments: dict[str, Any], functions: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    """Check a call against the offered functions; return the cleaned arguments and the repairs made.

    Error messages are short and say what to change, because they go back to the model verbatim.
    """
    raw = dump({"name": name, "arguments": arguments})
    schemas = _function_schemas(functions)
    if name not in schemas:
        raise LLMOutputError(f'Unknown function "{name}". Call one of: {", ".join(schemas)}.', raw)
    properties: Mapping[str, Any] = schemas[name].get("properties") or {}
    repairs = []
    if any(key not in properties for key in arguments):
        repairs.append("dropped_unknown_args")
    args = {key: value for key, value in arguments.items() if key in properties}
    nulls = [key for key, value in args.items() if value is None and not _accepts_null(properties[key])]
    if nulls:  # `"page": null` means "not given" to a model; absent then falls back to the default
        args = {key: value for key, value in args.items() if key not in nulls}
        repairs.append("dropped_null_args")
    if HEARTBEAT in properties and HEARTBEAT not in args:
        args[HEARTBEAT] = False
        repairs.append("default_heartbeat")
    missing = [key for key in schemas[name].get("required") or () if key not in args]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise LLMOutputError(f"{name} is missing required argument{plural}: {', '.join(missing)}.", raw)
    cleaned: dict[str, Any] = {}
    for key, schema in properties.items():
        if key in args:
            try:
                cleaned[key], coerced = _check(args[key], schema, f'Argument "{key}" of {name}')
            except LLMOutputError as err:
                raise LLMOutputError(str(err), raw) from None
            if coerced and "coerced_types" not in repairs:
                repairs.append("coerced_types")
    return cleaned, repairs


def match_name(name: str, functions: Sequence[Mapping[str, Any]], repairs: list[str]) -> str:
    """Exact name, else a unique match ignoring case, separators and a `functions.` prefix."""
    names = list(_function_schemas(functions))
    if name in names:
        return name

    def key(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "", text.lower().removeprefix("functions."))

    wanted = key(name)  # once: a model's "name" can be the whole reply
    matches = [known for known in names if key(known) == wanted]
    if len(matches) == 1:
        repairs.append("normalised_name")
        return matches[0]
    return name
