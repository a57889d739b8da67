"""Presets and the files they name: system prompts (+ their field YAML), personas, humans, custom
core-memory files and layout templates. User files in $MEMAGENT_HOME come before the bundled ones.

Every name is checked with the one name rule (``memagent.text.check_name``) before it becomes a path, and
every file is read with ``read_user_text``: a binary, non-UTF-8 or unreadable file is one ConfigError line
naming the file and the fix, and the text is cleaned like all text entering memagent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from memagent.errors import ConfigError
from memagent.memory.auto_recall import HITS_LIMIT, MAX_TOKENS_LIMIT, AutoRecall
from memagent.memory.core import DEFAULT_SECTION_LIMIT, CoreMemory, Section
from memagent.prompts.template import DEFAULT_LAYOUT, DEFAULT_SECTION, SystemPromptTemplate
from memagent.text import check_name, clean_text

DEFAULT_PRESET = "memgpt_chat"
BUNDLED = Path(str(resources.files("memagent") / "data"))
_KIND_NAMES = {"presets": "preset", "system_prompts": "system prompt", "personas": "persona", "humans": "human"}


def read_user_text(path: Path) -> str:
    """A text file memagent reads (preset, prompt, template, persona...) as clean text, or one ConfigError
    line saying which file, what is wrong with it and how to fix it. A UTF-8 byte-order mark is allowed."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Can't read {path}: {exc.strerror or exc}; make it a readable text file.") from None
    if b"\x00" in data:
        raise ConfigError(f"{path} is not a text file (it holds NUL bytes); replace it with UTF-8 text or remove it.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8 and try again."
        ) from None
    return clean_text(text)


@dataclass(frozen=True)
class Library:
    """Where named files are looked up: the user's folder first, then the bundled data."""

    home: Path | None = None

    def folders(self, kind: str) -> list[Path]:
        folders = [self.home / kind] if self.home else []
        return folders + [BUNDLED / kind]

    def find(self, kind: str, name: str, suffix: str, *, required: bool = True) -> Path | None:
        check_name(name, _KIND_NAMES.get(kind, kind.rstrip("s")))
        tried = [folder / f"{name}{suffix}" for folder in self.folders(kind)]
        for path in tried:
            if path.is_file():
                return path
        if required:
            raise ConfigError(
                f"{kind.rstrip('s').capitalize()} {name!r} not found: looked for {tried[0]}"
                + (f" and {tried[1]}" if len(tried) > 1 else "")
                + "."
            )
        return None

    def names(self, kind: str, suffix: str) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in reversed(self.folders(kind)):
            for path in sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []:
                found[path.name[: -len(suffix)]] = path
        return dict(sorted(found.items()))


def read_yaml(path: Path) -> Any:
    """A user's YAML file, or one ConfigError line naming the file (and line) and the problem."""
    text = read_user_text(path)
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"Invalid YAML in {where}: {problem}; fix the file's syntax.") from None


@dataclass(frozen=True)
class Preset:
    name: str
    system_prompt: str
    functions: list[str]
    persona: str = "sam_pov"
    human: str = "basic"
    core_memory_type: str = "default"
    core_memory_file: str | None = None
    system_message_layout_template: str | None = None
    core_memory_section_template: str | None = None
    memory_blocks: dict[str, Any] | None = None  # label -> {content, description, limit, read_only}, checked on load
    auto_recall: AutoRecall | None = None  # retrieved memory attached to each user message (memory/auto_recall.py)
    source: Path = field(default=Path("."))


_PRESET_KEYS = {
    "system_prompt",
    "functions",
    "persona",
    "human",
    "core_memory_type",
    "core_memory_file",
    "system_message_layout_template",
    "core_memory_section_template",
    "memory_blocks",
    "auto_recall",
}
_BLOCK_KEYS = {"content", "description", "limit", "max_length", "read_only"}


def load_preset(library: Library, name: str) -> Preset:
    path = library.find("presets", name, ".yaml")
    assert path is not None
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"Preset {path} must be a YAML mapping with system_prompt and functions.")
    unknown = sorted(set(data) - _PRESET_KEYS)
    if unknown:
        raise ConfigError(
            f"Preset {path} has unknown key {unknown[0]!r}. Known keys: {', '.join(sorted(_PRESET_KEYS))}."
        )
    for key in ("system_prompt", "functions"):
        if key not in data:
            raise ConfigError(f"Preset {path} is missing {key!r}.")
    if not isinstance(data["functions"], list) or not all(isinstance(f, str) for f in data["functions"]):
        raise ConfigError(f"Preset {path}: 'functions' must be a list of function names.")
    core_type = data.get("core_memory_type", "default")
    if core_type not in ("default", "custom"):
        raise ConfigError(f"Preset {path}: core_memory_type must be 'default' or 'custom', not {core_type!r}.")
    if core_type == "custom" and not data.get("core_memory_file"):
        raise ConfigError(f"Preset {path}: core_memory_type 'custom' needs core_memory_file.")
    fields = {k: data[k] for k in _PRESET_KEYS & set(data)}
    fields["auto_recall"] = auto_recall_from_yaml(path, data.get("auto_recall"))
    preset = Preset(name=name, source=path, **fields)
    if preset.memory_blocks is not None:
        blocks_from_yaml(path, preset.memory_blocks)  # every mistake in a block is found when the preset loads
    # Fail at load time, naming the path looked for, if a referenced file is missing.
    for kind, ref, suffix in _references(preset):
        library.find(kind, ref, suffix)
    return preset


_AUTO_RECALL_KEYS = {"hits": HITS_LIMIT, "max_tokens": MAX_TOKENS_LIMIT}
_AUTO_RECALL_FORMS = "write true, false, or {hits: 3, max_tokens: 200}"


def auto_recall_from_yaml(path: Path, value: Any) -> AutoRecall | None:
    """A preset's ``auto_recall``: absent or false (off), true (the defaults) or {hits, max_tokens}; any other value
    is one ConfigError line naming the file and the key."""
    if value is None or value is False:
        return None
    if value is True:
        return AutoRecall()
    if not isinstance(value, dict):
        raise ConfigError(f"Preset {path}: auto_recall is {clean_text(repr(value))[:80]}; {_AUTO_RECALL_FORMS}.")
    unknown = sorted(map(str, set(value) - set(_AUTO_RECALL_KEYS)))
    if unknown:
        raise ConfigError(
            f"Preset {path}: auto_recall has unknown key {clean_text(unknown[0])[:40]!r}; known keys: hits, max_tokens."
        )
    for key, most in _AUTO_RECALL_KEYS.items():
        number = value.get(key, getattr(AutoRecall, key))
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= most:
            raise ConfigError(
                f"Preset {path}: auto_recall {key} is {clean_text(repr(number))[:40]}; give a whole number from 1 to "
                f"{most}."
            )
    return AutoRecall(**{key: value[key] for key in _AUTO_RECALL_KEYS if key in value})


def _references(preset: Preset) -> list[tuple[str, str, str]]:
    refs = [("system_prompts", preset.system_prompt, ".txt")]
    if preset.core_memory_type == "custom" and preset.core_memory_file:
        refs.append(("presets", preset.core_memory_file, ".yaml"))
    else:
        refs += [("personas", preset.persona, ".txt"), ("humans", preset.human, ".txt")]
    for ref in (preset.system_message_layout_template, preset.core_memory_section_template):
        if ref:
            refs.append(("presets", ref, ".txt"))
    return refs


def load_template(library: Library, preset: Preset, builtin_fields: dict[str, str]) -> SystemPromptTemplate:
    """The preset's system prompt as a template: built-in fields, overridden by the prompt's YAML."""
    path = library.find("system_prompts", preset.system_prompt, ".txt")
    assert path is not None
    fields = dict(builtin_fields)
    yaml_path = path.with_suffix(".yaml")
    if yaml_path.is_file():
        fields.update(_field_file(yaml_path))
    layout = _read_text(library, preset.system_message_layout_template) or DEFAULT_LAYOUT
    section = _read_text(library, preset.core_memory_section_template) or DEFAULT_SECTION
    return SystemPromptTemplate(
        text=read_user_text(path).rstrip("\n"),
        fields=fields,
        layout=layout,
        section_template=section,
        source=str(path),
    )


def _read_text(library: Library, name: str | None) -> str | None:
    if not name:
        return None
    path = library.find("presets", name, ".txt")
    assert path is not None
    return read_user_text(path).rstrip("\n")


def _field_file(path: Path) -> dict[str, str]:
    """A system prompt's field YAML: plain field names (like {persona_intro} in the prompt) to text."""
    extra = read_yaml(path) or {}
    if not isinstance(extra, dict):
        raise ConfigError(f"Field file {path} must map field names to text.")
    for key in extra:
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(
                f"Field file {path}: {clean_text(repr(key))[:80]} is not a field name; use a plain name "
                "like persona_intro (letters, digits and '_')."
            )
    return {key: "" if value is None else clean_text(str(value)) for key, value in extra.items()}


def builtin_fields() -> dict[str, str]:
    data = read_yaml(BUNDLED / "builtin_fields.yaml")
    return {str(k): str(v) for k, v in data.items()}


def initial_core_memory(library: Library, preset: Preset) -> CoreMemory:
    if preset.memory_blocks is not None:
        return CoreMemory(blocks_from_yaml(preset.source, preset.memory_blocks))
    if preset.core_memory_type == "custom" and preset.core_memory_file:
        path = library.find("presets", preset.core_memory_file, ".yaml")
        assert path is not None
        return CoreMemory(blocks_from_yaml(path, read_yaml(path)))
    persona = library.find("personas", preset.persona, ".txt")
    human = library.find("humans", preset.human, ".txt")
    assert persona is not None and human is not None
    return CoreMemory(
        {
            "persona": Section(read_user_text(persona).strip()),
            "human": Section(read_user_text(human).strip()),
        }
    )


def blocks_from_yaml(path: Path, data: Any) -> dict[str, Section]:
    """Core memory blocks as a preset or a core memory file declares them: each label maps to its text, or to
    {content, description, limit, read_only}. Any mistake is one ConfigError naming the file and the block."""
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            f"{path}: core memory blocks must map block labels to their text or to {{content, description, limit, "
            "read_only}."
        )
    blocks: dict[str, Section] = {}
    for label, value in data.items():
        try:
            name = check_name(str(label), "core memory block")
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if not isinstance(value, dict):
            blocks[name] = Section("" if value is None else clean_text(str(value)).strip())
            continue
        unknown = sorted(set(map(str, value)) - _BLOCK_KEYS)
        if unknown:
            raise ConfigError(
                f"{path}: block {name!r} has unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_BLOCK_KEYS))}."
            )
        if "content" not in value:
            raise ConfigError(f"{path}: block {name!r} needs 'content' (it may be empty: content: \"\").")
        limit = value.get("limit", value.get("max_length", DEFAULT_SECTION_LIMIT))
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(
                f"{path}: block {name!r} has limit {limit!r}; give a whole number of characters, 1 or more."
            )
        read_only = value.get("read_only", False)
        if not isinstance(read_only, bool):
            raise ConfigError(f"{path}: block {name!r} has read_only {read_only!r}; write true or false.")
        content = "" if value["content"] is None else clean_text(str(value["content"])).strip()
        if len(content) > limit:
            raise ConfigError(
                f"{path}: block {name!r} has {len(content)} characters, over its limit of {limit}; shorten it or "
                "raise the limit."
            )
        description = clean_text(str(value.get("description") or "")).strip()
        blocks[name] = Section(content, limit, description, read_only)
    return blocks
