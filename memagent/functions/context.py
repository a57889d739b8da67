"""What a function sees of the agent: the FunctionContext protocol every memory function takes first."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from memagent.memory.core import CoreMemory
from memagent.memory.filters import SearchFilter


class SearchResults(Protocol):
    items: list[Any]
    total: int
    page: int
    num_pages: int


class FunctionContext(Protocol):
    core_memory: CoreMemory

    def send_message(self, message: str) -> None: ...
    def core_memory_changed(self) -> None: ...
    def search_recall(self, query: str, page: int, filters: SearchFilter = ...) -> SearchResults: ...
    def search_recall_by_date(self, start: date, end: date, page: int) -> SearchResults: ...
    def insert_archival(self, content: str, tags: tuple[str, ...] = ...) -> None: ...
    def search_archival(self, query: str, page: int, filters: SearchFilter = ...) -> SearchResults: ...
    def pause_heartbeats(self, minutes: int) -> None: ...
