"""Text files -> archival memory passages, for `memagent load` and the REPL's `/attach`.

Passages are what `archival_memory_search` returns to the model, so each should be a readable piece of
about CHUNK_CHARS characters that ends where the text pauses: chunks are packed from whole paragraphs,
long paragraphs are cut between sentences, and only a sentence longer than a chunk is cut between words.
Text in the common encodings is read (UTF-8 with or without a BOM, UTF-16/32 with a BOM, else Windows-1252 /
Latin-1) and cleaned like all text entering memagent; binary files (a NUL byte or many control bytes near
the start) are skipped with a note instead of filling memory with garbage.
Nothing here imports the model: loading works while no backend exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from memagent.errors import UserError
from memagent.memory.store import Store
from memagent.text import clean_text

CHUNK_CHARS = 1000
_SNIFF_BYTES = 8192
_BOMS = (  # UTF-32 before UTF-16: the UTF-32-LE mark starts with the UTF-16-LE one
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
# Bytes that text files don't hold (C0 controls but tab, newline, form feed, return and escape; and DEL).
_CONTROL_BYTES = bytes(set(range(32)) - {9, 10, 12, 13, 27}) + b"\x7f"
_MAX_CONTROL_RATIO = 0.05
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


def looks_binary(data: bytes) -> bool:
    """A NUL byte, or more than a few control bytes, near the start (text with no byte-order mark)."""
    sniff = data[:_SNIFF_BYTES]
    if b"\x00" in sniff:
        return True
    controls = len(sniff) - len(sniff.translate(None, _CONTROL_BYTES))
    return controls > _MAX_CONTROL_RATIO * len(sniff)


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a few bad bytes (a truncated end, one stray Latin-1 byte) as UTF-8 with U+FFFD for them;
    None when the bad bytes outnumber the good non-ASCII characters (a file in a single-byte encoding)."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count("\ufffd".encode())
    good = sum(1 for ch in text if ch > "\x7f") - text.count("\ufffd")
    return text if good > bad else None


def decode_text(data: bytes) -> str | None:
    """Bytes of a text file as clean text in the encodings people's files are in, or None if binary."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return clean_text(data[len(bom):].decode(codec, errors="replace"))
    if looks_binary(data):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = _mostly_utf8(data) or _single_byte(data)
    return clean_text(text)


def _single_byte(data: bytes) -> str:
    """Windows-1252 (what "Latin-1" files usually are), or ISO-8859-1 for the five bytes cp1252 lacks."""
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_text_file(path: Path) -> str | None:
    """The file's text, cleaned, or None if it looks binary. See `decode_text` for the encodings."""
    return decode_text(path.read_bytes())


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_files(path: Path) -> list[Path]:
    """`path` itself if it is a file; else every file below it, sorted, skipping hidden files and folders."""
    try:
        if path.is_file():
            return [path]
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
    except (OSError, ValueError) as exc:  # a name too long, a folder we may not list, an embedded NUL
        reason = getattr(exc, "strerror", None) or exc
        raise UserError(f"Can't read {path}: {reason}. Give a readable text file or folder.") from None
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
        return clean_text("\n".join([text, *notes]))  # file names may hold escape codes or undecodable bytes


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
