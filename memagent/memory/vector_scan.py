"""One agent's vectors of one kind in memory, and the rows nearest a query vector: SQLite's dense ranking.

A two-stage scan, no index to build or keep in step with the database:

1. **Codes.** Each dimension of a vector is put in one of three levels: below, inside or above a band around the
   agent's mean (``centre`` +- ``BAND`` standard deviations of that dimension: the tertiles of a normal), kept as
   two bits ("above the band's low edge", "above its high edge"; 768 bits, twelve 64-bit words a row), word-major
   (``codes[w]`` is word ``w`` of every row, contiguous). The Hamming distance between two such codes is the sum
   over dimensions of how many levels apart they are (an L1 distance of the vectors quantized to three levels),
   computed for every row as twelve passes of xor and popcount over contiguous memory, block by block to stay in
   cache.
2. **Exact re-ranking.** The ``shortlist`` rows with the smallest distances (ties at the cut included, up to a
   bound) are scored exactly (float32 dot product: cosine of unit vectors) and the best ``limit`` returned.

Why (bench/README.md, "Hybrid search at scale"): the exact scan of every float32 vector was the largest part of a
hybrid search (~15-20 ms of CPU at 100k rows, ~150 ms at 1M; memory-bound, and no numpy dtype made it cheaper);
the codes are 1/16 of the floats (96 bytes a row) and are scanned in ~2 ms at 100k rows, ~20 ms at 1M.

Why these codes, measured on real e5 vectors of LoCoMo's turns (``bench/dense_recall.py``): e5's vectors share
one direction (a narrow cone), so the signs of the raw vectors say little (a short-list of 5% of the rows held
.52 of the exact top 10); signs around the mean held .93; three levels around it .98 (four levels: .997, at
twice the scan). The centre and band are taken from the rows in memory when the codes were last made, and made
again (every code with them) whenever the count has doubled since: each row is coded O(1) times on average, and
a band from a few rows does not stay forever.

Exact (every row scored) when the rows fit in the shortlist, and when numpy has no ``bitwise_count`` (numpy < 2).
All of it on the calling thread: numpy's element-wise loops and einsum never start threads (BLAS would: see
``_best``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

BLOCK = 16_384
"""Rows per pass of the code scan: its temporaries stay at 1.7 MB whatever the rows (blocks of 4k-64k rows and one
pass over everything measured within the machine's noise of each other at 1M rows, 20-29 ms)."""

MIN_SHORTLIST = 400
"""Rows re-ranked exactly at least (and the size below which every row is scored)."""

SHORTLIST_SHARE = 100
"""Above ``MIN_SHORTLIST * SHORTLIST_SHARE`` rows, one row in this many is re-ranked exactly..."""

MAX_SHORTLIST = 4_000
"""... up to this many (from 400k rows on): re-ranking reads each row's 1.5 KB of floats, 7.4 ms of CPU for 11k rows
at 1M rows against 19 ms for the codes of every row."""

BAND = 0.4307
"""Half the width of the middle level, in standard deviations of each dimension: a normal's tertiles."""

TIES = 4
"""Rows tied at the shortlist's cut are all re-ranked, up to this many times the shortlist."""


def shortlist(rows: int, limit: int) -> int:
    """How many rows a search re-ranks exactly: ``MIN_SHORTLIST`` (and at least 8 x ``limit``), or one row in
    ``SHORTLIST_SHARE`` up to ``MAX_SHORTLIST`` when that is more."""
    return max(MIN_SHORTLIST, 8 * limit, min(rows // SHORTLIST_SHARE, MAX_SHORTLIST))


def _numpy() -> Any:
    import numpy

    return numpy


def has_popcount() -> bool:
    """Whether this numpy counts bits (``bitwise_count``, numpy >= 2): else every search is the exact scan."""
    return hasattr(_numpy(), "bitwise_count")


@dataclass
class VectorMatrix:
    """An agent's vectors of one kind and model, in embedding-id order: the first ``count`` rows of ``buffer``
    (float32), which doubles when full so topping it up costs the new rows only, and their codes."""

    count: int = 0
    row_ids: list[int] = field(default_factory=list)
    buffer: Any = None
    codes: Any = None
    """uint64, (words, capacity): ``codes[w, i]`` is word ``w`` of row ``i``'s code."""
    edges: Any = None
    """float32, (2, dimension): the low and high edges of each dimension's middle level."""
    centred_at: int = 0
    """``count`` when ``edges`` were taken (the codes are made again when it has doubled)."""
    use_codes: bool = field(default_factory=lambda: has_popcount())

    def append(self, row_ids: Sequence[int], vectors: Sequence[bytes]) -> None:
        np = _numpy()
        added = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(len(vectors), -1)
        start, needed = self.count, self.count + len(vectors)
        if self.buffer is None or needed > len(self.buffer):
            capacity = max(needed, 2 * self.count, 256)
            grown = np.empty((capacity, added.shape[1]), dtype="<f4")
            if self.buffer is not None:
                grown[: self.count] = self.buffer[: self.count]
            self.buffer = grown
            if self.use_codes:
                codes = np.zeros((_words(2 * added.shape[1]), capacity), dtype=np.uint64)
                if self.codes is not None:
                    codes[:, : self.count] = self.codes[:, : self.count]
                self.codes = codes
        self.buffer[start:needed] = added
        self.row_ids.extend(row_ids)
        self.count = needed
        if not self.use_codes:
            return
        if self.edges is None or needed >= 2 * self.centred_at:
            self.edges = _edges(self.buffer[:needed])
            self.centred_at = needed
            start = 0  # every code again, with the new edges
        for first in range(start, needed, BLOCK):
            last = min(first + BLOCK, needed)
            self.codes[:, first:last] = self._code(self.buffer[first:last]).T

    def _code(self, vectors: Any) -> Any:
        """Codes of ``vectors`` (rows): uint64, (rows, words); a row's bits are "above the low edge" for every
        dimension, then "above the high edge"; padding bits are 0."""
        np = _numpy()
        bits = np.packbits(np.concatenate([vectors > self.edges[0], vectors > self.edges[1]], axis=1), axis=1)
        padded = np.zeros((len(vectors), 8 * self.codes.shape[0]), dtype=np.uint8)
        padded[:, : bits.shape[1]] = bits
        return padded.view(np.uint64)

    def nearest(self, query: bytes, limit: int) -> list[int]:
        """Row ids of the ``limit`` rows nearest ``query`` (float32 bytes; by dot product), best first."""
        np = _numpy()
        top = min(limit, self.count)
        if top <= 0:
            return []
        vector = np.frombuffer(query, dtype="<f4")
        wanted = max(shortlist(self.count, limit), top)
        if not self.use_codes or self.count <= wanted:
            return self._best(np.arange(self.count), vector, top)
        distances = self._distances(self._code(vector[None, :])[0])
        return self._best(self._closest(distances, wanted), vector, top)

    def _distances(self, code: Any) -> Any:
        """Hamming distance of every row's code to ``code``, uint16: per block of rows, xor and popcount of every
        word at once, then the words' counts summed."""
        np = _numpy()
        distances = np.empty(self.count, dtype=np.uint16)
        block = min(BLOCK, self.count)
        words = np.empty((len(code), block), dtype=np.uint64)
        counts = np.empty((len(code), block), dtype=np.uint8)
        column = code[:, None]
        for first in range(0, self.count, block):
            last = min(first + block, self.count)
            size = last - first
            np.bitwise_xor(self.codes[:, first:last], column, out=words[:, :size])
            np.bitwise_count(words[:, :size], out=counts[:, :size])
            np.add.reduce(counts[:, :size], axis=0, dtype=np.uint16, out=distances[first:last])
        return distances

    @staticmethod
    def _closest(distances: Any, wanted: int) -> Any:
        """Row indexes of the ``wanted`` smallest distances, with the rows tied at the cut (at most ``TIES`` x
        ``wanted`` in all), in row order. A histogram finds the cut: cheaper than a partial sort of every row."""
        np = _numpy()
        cut = int(np.searchsorted(np.cumsum(np.bincount(distances)), wanted))
        chosen = np.flatnonzero(distances <= cut)
        if len(chosen) > TIES * wanted:
            chosen = np.sort(chosen[np.argpartition(distances[chosen], wanted - 1)[:wanted]])
        return chosen

    def _best(self, rows: Any, vector: Any, top: int) -> list[int]:
        """The ``top`` of ``rows`` (indexes, in row order) by exact score, best first; ties keep row order."""
        np = _numpy()
        # einsum, not ``@``: numpy's BLAS would spread this product over every core, and on a busy 2-core machine
        # its threads made it 100 times slower (8 ms instead of 0.07 ms for 2,000 rows); einsum's own loop is one
        # thread.
        matrix = self.buffer[: self.count] if len(rows) == self.count else self.buffer[rows]
        scores = np.einsum("ij,j->i", matrix, vector)
        best = np.argpartition(-scores, top - 1)[:top]
        best = best[np.lexsort((best, -scores[best]))]
        return [self.row_ids[i] for i in rows[best].tolist()]


def _edges(rows: Any) -> Any:
    """float32 (2, dimension): each dimension's mean -+ ``BAND`` standard deviations over ``rows``, summed a block
    at a time (a float64 copy of a million rows would take 3 GB)."""
    np = _numpy()
    sums, squares = np.zeros(rows.shape[1]), np.zeros(rows.shape[1])
    for first in range(0, len(rows), BLOCK // 8):
        block = rows[first : first + BLOCK // 8].astype(np.float64)
        sums += block.sum(axis=0)
        squares += np.square(block).sum(axis=0)
    centre = sums / len(rows)
    spread = np.sqrt(np.maximum(squares / len(rows) - np.square(centre), 0.0))
    return np.stack([centre - BAND * spread, centre + BAND * spread]).astype("<f4")


def _words(bits: int) -> int:
    return -(-bits // 64)
