"""The two-stage dense scan (``memagent/memory/vector_scan.py``): sign codes short-list the rows, float32 re-ranks
them. What must hold whatever the codes do: the answer is the exact one when the near rows are clearly near, rows
added later are found, and without popcount (numpy < 2) the scan is exact."""

from __future__ import annotations

from typing import Any

import pytest

from memagent.memory import vector_scan
from memagent.memory.vector_scan import VectorMatrix, shortlist

np = pytest.importorskip("numpy")

DIMENSION = 384


def unit_rows(count: int, seed: int, spread: float = 1.0, around: Any = None) -> Any:
    """``count`` unit vectors: random, or ``around`` plus noise of norm ~``spread`` (a cone, as e5's vectors are)."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((count, DIMENSION)).astype("<f4") * (spread / DIMENSION**0.5)
    if around is not None:
        rows += around
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def as_bytes(rows: Any) -> list[bytes]:
    return [row.astype("<f4").tobytes() for row in rows]


def exact(rows: Any, ids: list[int], query: Any, limit: int) -> list[int]:
    scores = rows @ query
    order = sorted(range(len(ids)), key=lambda i: (-float(scores[i]), i))
    return [ids[i] for i in order[:limit]]


def test_the_scan_returns_the_exact_nearest_rows_when_they_stand_out_from_a_narrow_cone() -> None:
    """5,000 rows around one direction (cosines ~.8 among them, as e5's), and a query with 10 rows planted near it:
    the short-list (400 rows of 5,000) must hold those 10, and the re-ranking order them exactly."""
    centre = unit_rows(1, seed=1)[0]
    rows = unit_rows(5_000, seed=2, spread=0.5, around=centre)
    query = unit_rows(1, seed=3, spread=0.5, around=centre)[0]
    near = np.random.default_rng(4).choice(len(rows), 10, replace=False)
    rows[near] = unit_rows(10, seed=5, spread=0.1, around=query)
    ids = [1_000 + 3 * i for i in range(len(rows))]
    matrix = VectorMatrix()
    matrix.append(ids[:3_000], as_bytes(rows[:3_000]))
    matrix.append(ids[3_000:], as_bytes(rows[3_000:]))  # topped up, as a refresh does
    assert matrix.count > shortlist(matrix.count, 10) and matrix.use_codes == vector_scan.has_popcount()
    assert matrix.nearest(query.tobytes(), 10) == exact(rows, ids, query, 10)
    assert sorted(matrix.nearest(query.tobytes(), 10)) == sorted(ids[i] for i in near)


def test_rows_appended_one_at_a_time_are_coded_and_found() -> None:
    """A chat adds its rows a few at a time: each must be findable at once, whether or not the centre (and every
    code) was made again when it came."""
    rows = unit_rows(1_200, seed=6, spread=0.5, around=unit_rows(1, seed=7)[0])
    matrix = VectorMatrix()
    for i, row in enumerate(as_bytes(rows)):
        matrix.append([i], [row])
    for probe in (0, 599, 1_199):
        assert matrix.nearest(rows[probe].tobytes(), 1) == [probe]
    assert matrix.centred_at > 600  # re-centred as it grew, not kept from the first row


def test_a_code_puts_each_dimension_below_inside_or_above_a_band_around_the_mean() -> None:
    rows = unit_rows(500, seed=8)
    matrix = VectorMatrix()
    matrix.append(list(range(500)), as_bytes(rows))
    if not matrix.use_codes:
        pytest.skip("numpy < 2: no popcount, no codes")
    low, high = matrix.edges
    assert np.allclose((low + high) / 2, rows.mean(axis=0), atol=1e-6)
    assert np.allclose((high - low) / 2, vector_scan.BAND * rows.std(axis=0), atol=1e-6)
    # codes[w] holds the 8 bytes of word w in memory order: the row's bits in dimension order
    bits = np.unpackbits(np.ascontiguousarray(matrix.codes[:, 17]).view(np.uint8))
    assert bits[:DIMENSION].tolist() == (rows[17] > low).astype(np.uint8).tolist()
    assert bits[DIMENSION : 2 * DIMENSION].tolist() == (rows[17] > high).astype(np.uint8).tolist()
    # the distance of two codes: how many levels apart each dimension is, summed
    levels = (rows > low).astype(int) + (rows > high).astype(int)
    distances = matrix._distances(matrix._code(rows[:1])[0])
    assert distances.tolist() == np.abs(levels - levels[0]).sum(axis=1).tolist()


def test_without_popcount_every_row_is_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vector_scan, "has_popcount", lambda: False)
    rows = unit_rows(2_000, seed=9)
    ids = list(range(2_000))
    matrix = VectorMatrix()
    matrix.append(ids, as_bytes(rows))
    assert matrix.codes is None
    query = unit_rows(1, seed=10)[0]
    assert matrix.nearest(query.tobytes(), 20) == exact(rows, ids, query, 20)


def test_ties_at_the_cut_are_bounded_and_identical_rows_still_rank() -> None:
    """Rows with the same code (here all the same vector) tie at any cut: the short-list stays bounded and the
    answer is still rows of the matrix, in row order among equal scores."""
    rows = np.repeat(unit_rows(1, seed=11), 5_000, axis=0)
    matrix = VectorMatrix()
    matrix.append(list(range(5_000)), as_bytes(rows))
    assert len(matrix.nearest(rows[0].tobytes(), 10)) == 10
    if matrix.use_codes:
        distances = matrix._distances(matrix._code(rows[:1])[0])
        assert len(VectorMatrix._closest(distances, 400)) == 400


def test_the_shortlist_grows_with_the_rows() -> None:
    assert shortlist(1_000, 10) == vector_scan.MIN_SHORTLIST
    assert shortlist(1_000, 100) == 800
    assert shortlist(100_000, 10) == 100_000 // vector_scan.SHORTLIST_SHARE
    assert shortlist(10_000_000, 10) == vector_scan.MAX_SHORTLIST
