"""Reading LoCoMo conversations (Maharana et al., ACL 2024) into plain dataclasses, whatever is missing.

A file holds one conversation as a flat object (``speaker_a``, ``speaker_b``, ``session_N``,
``session_N_date_time``, ``qa``), as in ``shared/data/locomo-dev/``; the published ``locomo10.json`` shape
(a list of samples, each with ``conversation`` and ``qa``) is read too. Nothing is tuned to particular files:
every field may be absent or malformed, and what could not be used is counted in a ``Skipped`` tally
(``reasons``) instead of stopping the run:

- a session without a readable date keeps its turns (their time follows the previous session's, see
  ``Session.moment``) and its passages get no date prefix;
- a turn without text or photo caption is not stored (the agent never stores an empty message);
- evidence ids are normalised ("D8:6; D9:17" is two ids, "D:11:26" is "D11:26"); ids that name no turn are
  dropped, and a question left with no evidence, with no text, or outside categories 1-4 is not asked.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
"""The categories asked; 5 (adversarial: no answer exists) has no evidence to retrieve."""

_SESSION_KEY = re.compile(r"session_(\d+)")
_EVIDENCE_ID = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")
_DATE_FORMATS = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %B %Y", "%d %B, %Y", "%d %B %Y", "%Y-%m-%d")
_FIRST_MOMENT = datetime(2000, 1, 1, 12, 0)
"""Where time starts when no session before has a date: any fixed moment keeps runs reproducible."""


@dataclass(frozen=True)
class Turn:
    dia_id: str | None
    speaker: str
    text: str
    caption: str | None  # the BLIP caption of a photo shared with the turn

    @property
    def said(self) -> str:
        """The turn as a chat message: its text, then the photo it shared (the caption is often the evidence)."""
        photo = f"[shared a photo: {self.caption}]" if self.caption else ""
        return " ".join(part for part in (self.text, photo) if part)


@dataclass(frozen=True)
class Session:
    number: int
    date: datetime | None
    date_text: str | None  # as written in the file, when it could not be read as a date
    turns: tuple[Turn, ...]

    @property
    def day(self) -> str | None:
        """The date passages carry ("8 May 2023"), or the text as written, or None."""
        if self.date is not None:
            return f"{self.date.day} {self.date:%B %Y}"
        return self.date_text


@dataclass(frozen=True)
class Question:
    text: str
    category: int
    evidence: frozenset[str]


@dataclass
class Conversation:
    name: str
    speaker_a: str
    speaker_b: str
    sessions: list[Session]
    questions: list[Question]

    @property
    def turns(self) -> Iterator[tuple[Session, Turn]]:
        for session in self.sessions:
            for turn in session.turns:
                yield session, turn


@dataclass
class Skipped:
    """What could not be used, by reason; printed with the results so a held-out run shows its data's gaps."""

    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, count: int = 1) -> None:
        if count:
            self.reasons[reason] += count


# -- reading ----------------------------------------------------------------------------------------------------


def load_folder(folder: Path, skipped: Skipped) -> list[Conversation]:
    """Every conversation of the ``*.json`` files in ``folder``, by file name; unreadable files are counted."""
    conversations: list[Conversation] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            skipped.add("files that are not readable JSON")
            continue
        samples = data if isinstance(data, list) else [data]
        for index, sample in enumerate(samples):
            name = path.stem if len(samples) == 1 else f"{path.stem}#{index}"
            conversation = parse_conversation(name, sample, skipped)
            if conversation is None:
                skipped.add("conversations with no turns")
            else:
                conversations.append(conversation)
    return conversations


def parse_conversation(name: str, sample: Any, skipped: Skipped) -> Conversation | None:
    if not isinstance(sample, dict):
        return None
    body = sample.get("conversation") if isinstance(sample.get("conversation"), dict) else sample
    speaker_a, speaker_b = _text(body.get("speaker_a")) or "A", _text(body.get("speaker_b")) or "B"
    sessions = _sessions(body, skipped)
    if not any(session.turns for session in sessions):
        return None
    known = {turn.dia_id for session in sessions for turn in session.turns if turn.dia_id}
    qa = sample.get("qa")
    questions = _questions(qa if isinstance(qa, list) else [], known, skipped)
    return Conversation(name, speaker_a, speaker_b, sessions, questions)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _sessions(body: dict[str, Any], skipped: Skipped) -> list[Session]:
    numbered = sorted(
        (int(match.group(1)), value)
        for key, value in body.items()
        if (match := _SESSION_KEY.fullmatch(key)) and isinstance(value, list)
    )
    sessions = []
    for number, raw_turns in numbered:
        date_text = _text(body.get(f"session_{number}_date_time"))
        date = parse_date(date_text)
        if date is None:
            skipped.add("sessions without a readable date (kept, undated)")
        turns = tuple(turn for raw in raw_turns if (turn := _turn(raw, skipped)) is not None)
        sessions.append(Session(number, date, None if date else date_text or None, turns))
    return sessions


def _turn(raw: Any, skipped: Skipped) -> Turn | None:
    if not isinstance(raw, dict):
        skipped.add("turns that are not objects")
        return None
    text, caption = _text(raw.get("text")), _text(raw.get("blip_caption")) or None
    if not text and not caption:
        skipped.add("turns with no text")
        return None
    dia_id = normalise_ids(raw.get("dia_id"))
    if len(dia_id) != 1:
        skipped.add("turns without a dia_id (stored, can't be evidence)")
    return Turn(dia_id[0] if len(dia_id) == 1 else None, _text(raw.get("speaker")), text, caption)


def parse_date(text: str) -> datetime | None:
    """The date of "1:56 pm on 8 May, 2023" and of a few plainer spellings; None if it is none of them."""
    cleaned = " ".join(text.replace("am", "AM").replace("pm", "PM").split())
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, pattern)
        except ValueError:
            continue
    return None


def normalise_ids(value: Any) -> list[str]:
    """Turn ids ("D3:7") in a string or list, in order, written one way: "D:11:26" -> "D11:26"."""
    parts = value if isinstance(value, list) else [value]
    ids = []
    for part in parts:
        if isinstance(part, str):
            ids += [f"D{s}:{t}" for s, t in _EVIDENCE_ID.findall(part)]
    return ids


def _questions(qa: list[Any], known: set[str], skipped: Skipped) -> list[Question]:
    questions = []
    for raw in qa:
        if not isinstance(raw, dict):
            skipped.add("questions that are not objects")
            continue
        category = raw.get("category")
        if isinstance(category, str) and category.strip().isdigit():
            category = int(category)
        if category not in CATEGORIES:
            skipped.add("questions not in categories 1-4 (5 is adversarial)")
            continue
        text = _text(raw.get("question"))
        if not text:
            skipped.add("questions with no text")
            continue
        evidence = raw.get("evidence")
        written = [e for e in (evidence if isinstance(evidence, list) else [evidence]) if e not in (None, "")]
        ids = set(normalise_ids(written))
        found = frozenset(ids & known)
        skipped.add("evidence entries with no turn id in them (dropped)", sum(not normalise_ids(e) for e in written))
        skipped.add("evidence ids that name no turn (dropped)", len(ids - found))
        if not found:
            skipped.add("questions with no known evidence (not asked)")
            continue
        questions.append(Question(text, int(category), found))
    return questions


def moments(conversation: Conversation, spacing: timedelta = timedelta(seconds=1)) -> Iterator[datetime]:
    """When each turn was said, in order: its session's date, one ``spacing`` per turn after the first.

    LoCoMo dates sessions, not turns. A session without a date continues from the previous one's last turn."""
    last = _FIRST_MOMENT - spacing
    for session in conversation.sessions:
        start = session.date if session.date is not None else last + spacing
        for index, _turn in enumerate(session.turns):
            last = start + index * spacing
            yield last
