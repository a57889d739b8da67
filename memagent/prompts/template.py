"""The templated system message, in its own swappable class (the reviewers' request on MemGPT PR #895).

A system prompt may hold `{field}` placeholders; values come from the built-in fields, the prompt's YAML
file and the agent's own edits. The full system message is the layout template around the prompt and the
core memory sections. Rendering is safe: values are inserted literally (braces stay braces), attribute or
index access in a placeholder is refused, and an unknown placeholder is an error at load time.

The rendered message only changes when a field or core memory changes: the statistics it shows are a
snapshot taken at the last memory edit, so the prompt prefix stays byte-identical between turns and local
servers can reuse their KV cache.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, replace

from memagent.errors import ConfigError
from memagent.memory.core import CoreMemory

# MemGPT's layout with the time of the last memory edit moved from the heading to the end: everything before it is the
# same for every new agent of a preset, so the embedded backend's shared prompt prefix covers core memory too.
DEFAULT_LAYOUT = """{system}

### Memory
{len_recall_memory} previous messages between you and the user are stored in recall memory (use functions to access them)
{len_archival_memory} total memories you created are stored in archival memory (use functions to access them)

Core memory shown below (limited in size, additional information stored in archival / recall memory):
{core_memory_content}
(Memory last modified: {memory_edit_timestamp})"""

DEFAULT_SECTION = """<{memory_key} characters={memory_value_length}/{memory_value_limit}{memory_attributes}>
{memory_value}
</{memory_key}>"""

LAYOUT_FIELDS = ("system", "memory_edit_timestamp", "len_recall_memory", "len_archival_memory", "core_memory_content")
SECTION_FIELDS = (
    "memory_key",
    "memory_value",
    "memory_value_length",
    "memory_value_limit",
    "memory_description",
    "memory_read_only",
    "memory_attributes",  # ` description="..."` and ` read-only` when they apply: nothing for a plain block
)


def block_attributes(description: str, read_only: bool) -> str:
    quoted = " ".join(description.replace('"', "'").split())
    return (f' description="{quoted}"' if quoted else "") + (" read-only" if read_only else "")


def placeholders(template: str, where: str) -> list[str]:
    """The `{name}` placeholders of a template, refusing anything but plain names."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone "{" or "}"
        raise ConfigError(f"Template {where} is malformed: {exc}. Write a literal brace as {{{{ or }}}}.") from exc
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ConfigError(
                f"Template {where} has placeholder {{{shown}}}: only plain names like {{persona_intro}} "
                "are allowed (no attribute, index, conversion or format)."
            )
        names.append(name)
    return names


def safe_format(template: str, values: Mapping[str, object], where: str) -> str:
    """Substitute `{name}` placeholders; values are inserted as-is and never re-interpreted."""
    out: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(str(values[name]))
    return "".join(out)


def check_fields(template: str, known: set[str] | tuple[str, ...], where: str) -> None:
    unknown = [n for n in placeholders(template, where) if n not in known]
    if unknown:
        raise ConfigError(
            f"Template {where} uses unknown field {{{unknown[0]}}}. Define it in the YAML file beside the "
            f"prompt, or use one of: {', '.join(sorted(known))}."
        )


@dataclass(frozen=True)
class MemoryStats:
    """Shown in the system message; refreshed only when memory is edited, to keep the prefix stable."""

    edit_timestamp: str
    recall_count: int
    archival_count: int


@dataclass(frozen=True)
class SystemPromptTemplate:
    text: str
    fields: Mapping[str, str]
    layout: str = DEFAULT_LAYOUT
    section_template: str = DEFAULT_SECTION
    source: str = "system prompt"

    def __post_init__(self) -> None:
        check_fields(self.text, set(self.fields), self.source)
        check_fields(self.layout, LAYOUT_FIELDS, f"{self.source} (layout)")
        check_fields(self.section_template, SECTION_FIELDS, f"{self.source} (core memory section)")

    def field_names(self) -> list[str]:
        """The fields this prompt uses, in order of first use."""
        return list(dict.fromkeys(placeholders(self.text, self.source)))

    def with_field(self, name: str, value: str) -> SystemPromptTemplate:
        if name not in self.field_names():
            used = ", ".join(self.field_names()) or "(this prompt has no fields)"
            raise ConfigError(f"Unknown template field {name!r}. Fields of this prompt: {used}.")
        return replace(self, fields={**self.fields, name: value})

    def render_prompt(self) -> str:
        return safe_format(self.text, self.fields, self.source)

    def render(self, core_memory: CoreMemory, stats: MemoryStats) -> str:
        sections = [
            safe_format(
                self.section_template,
                {
                    "memory_key": key,
                    "memory_value": section.content,
                    "memory_value_length": len(section.content),
                    "memory_value_limit": section.max_length,
                    "memory_description": section.description,
                    "memory_read_only": "read-only" if section.read_only else "",
                    "memory_attributes": block_attributes(section.description, section.read_only),
                },
                "core memory section",
            )
            for key, section in core_memory.sections.items()
        ]
        return safe_format(
            self.layout,
            {
                "system": self.render_prompt(),
                "memory_edit_timestamp": stats.edit_timestamp,
                "len_recall_memory": stats.recall_count,
                "len_archival_memory": stats.archival_count,
                "core_memory_content": "\n".join(sections),
            },
            "layout",
        )
