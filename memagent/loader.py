"""Text files -> archival memory passages, for `memagent load` and the REPL's `/attach`.

Passages are what `archival_memory_search` returns to the model, so each should be a readable piece of
about CHUNK_CHARS characters that ends where the text pauses: chunks are packed from whole paragraphs,
long paragraphs are cut between sentences, and only a sentence longer than a chunk is cut between words.
Binary files (a NUL byte, or not UTF-8) are skipped with a note instead of filling memory with garbage.
Nothing here imports the model: loading works while no backend exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from memagent.errors import UserError
from memagent.memory.store import Store

CHUNK_CHARS = 1000
_SNIFF_BYTES = 8192
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])[\"')\]]*\s+")


# ------------------------------------------------------------------------------------------ chunking


def _hard_split(sentence: str, limit: int) -> list[str]:
    """A sentence longer than a chunk: cut at the last space before the limit (mid-word only if none)."""
    parts: list[str] = []
    rest = sentence
    while len(rest) > limit:
        cut = rest.rfind(" ", 0, limit + 1)
        cut = cut if cut > limit // 2 else limit
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    return parts + ([rest] if rest else [])


def _sentences(paragraph: str, limit: int) -> list[str]:
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        sentence = " ".join(sentence.split())
        if sentence:
            pieces += _hard_split(sentence, limit) if len(sentence) > limit else [sentence]
    return pieces


def chunk_text(text: str, limit: int = CHUNK_CHARS) -> list[str]:
    """Split `text` into chunks of at most `limit` characters on paragraph, then sentence boundaries."""
    pieces: list[tuple[str, bool]] = []  # (text, starts a paragraph)
    for paragraph in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n")):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= limit:
            pieces.append((paragraph, True))
        else:
            pieces += [(s, i == 0) for i, s in enumerate(_sentences(paragraph, limit))]
    chunks: list[str] = []
    current = ""
    for piece, new_paragraph in pieces:
        joined = f"{current}{chr(10) * 2 if new_paragraph else ' '}{piece}" if current else piece
        if len(joined) <= limit:
            current = joined
        else:
            chunks.append(current)
            current = piece
    return chunks + ([current] if current else [])


# ------------------------------------------------------------------------------------------- files


def read_text_file(path: Path) -> str | None:
    """The file's text, or None if it looks binary (a NUL byte near the start, or not valid UTF-8)."""
    data = path.read_bytes()
    if b"\x00" in data[:_SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_files(path: Path) -> list[Path]:
    """`path` itself if it is a file; else every file below it, sorted, skipping hidden files and folders."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
    raise UserError(f"No such file or folder: {path}. Give a text file or a folder of text files.")


@dataclass
class LoadReport:
    """What a load did: passages inserted per file, and the files skipped with the reason."""

    loaded: list[tuple[Path, int]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def passages(self) -> int:
        return sum(count for _, count in self.loaded)

    def summary(self, agent: str) -> str:
        files = len(self.loaded)
        text = f"Loaded {self.passages} passages from {files} file{'s' * (files != 1)} into {agent}'s archival memory."
        notes = [f"Skipped {path}: {reason}." for path, reason in self.skipped]
        return "\n".join([text, *notes])


def _file_chunks(path: Path, limit: int) -> tuple[list[str], str | None]:
    """(chunks, None) or ([], why the file was skipped)."""
    try:
        text = read_text_file(path)
    except OSError as exc:
        return [], f"can't read it ({exc.strerror or exc})"
    if text is None:
        return [], "binary file"
    chunks = chunk_text(text, limit)
    return chunks, None if chunks else "empty"


Insert = Callable[[list[str]], object]


def store_inserter(store: Store, agent_id: int) -> Insert:
    """Insert passages straight into the store (for `memagent load`, with no agent running)."""

    def insert(chunks: list[str]) -> None:
        with store.transaction() as tx:
            tx.add_passages(agent_id, chunks)

    return insert


def iter_load(insert: Insert, files: list[Path], limit: int = CHUNK_CHARS) -> Iterator[tuple[Path, int, str | None]]:
    """Insert each file's chunks in one transaction; yields (file, passages added, skip reason)."""
    for path in files:
        chunks, reason = _file_chunks(path, limit)
        if chunks:
            insert(chunks)
        yield path, len(chunks), reason


def load_path(
    insert: Insert,
    path: Path,
    *,
    limit: int = CHUNK_CHARS,
    on_file: Callable[[Path], None] | None = None,
) -> LoadReport:
    """Load a text file or a folder of text files into an agent's archival memory."""
    report = LoadReport()
    for file, count, reason in iter_load(insert, find_files(path.expanduser()), limit):
        if reason is None:
            report.loaded.append((file, count))
        else:
            report.skipped.append((file, reason))
        if on_file:
            on_file(file)
    return report
