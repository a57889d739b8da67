"""Query processing for prototypes (bench/memory_variants.py): memagent's stopword list (``memagent.memory.
stopwords``, NLTK's 179 English words as published) applied to a query's text."""

from __future__ import annotations

from memagent.memory.dialect import query_terms
from memagent.memory.stopwords import NLTK_ENGLISH, content_terms

__all__ = ["NLTK_ENGLISH", "drop_stopwords"]


def drop_stopwords(query: str) -> str:
    """The query's search terms (as FTS5 splits them: "Caroline's" is "Caroline" and "s") minus the stopwords;
    the query unchanged when nothing else is left."""
    kept = content_terms(query_terms(query))
    return " ".join(kept) if kept else query
