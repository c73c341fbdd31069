import numpy as np
import pytest

from planning.bins import BinReason, BinState, ItemDims, choose_bin, fragmentation
from planning.placement import PlanningError


def make_bin(bin_id, occ, *, cell=10.0, depth=400.0, free_depth=None):
    rows, cols = occ.shape
    fd = np.where(occ, 0.0, depth) if free_depth is None else free_depth
    return BinState(bin_id, occ, fd, cell, cols * cell, rows * cell, depth)


def test_empty_bin_chosen_over_bins_with_higher_spots():
    half = np.zeros((20, 20), dtype=bool)
    half[:10, :] = True
    empty = np.zeros((20, 20), dtype=bool)
    choice = choose_bin([make_bin("A", half), make_bin("B", empty)], ItemDims(50, 50, 100))
    assert [e.bin_id for e in choice.ranked] == ["B", "A"]
    assert choice.best.best.y_mm == 0.0
    assert choice.rejected == ()


def test_fuller_bin_preferred_when_both_floor_spots():
    a = np.zeros((20, 20), dtype=bool)
    a[:, :12] = True  # fuller, free block on the right reaches the floor
    b = np.zeros((20, 20), dtype=bool)
    b[:, :2] = True
    choice = choose_bin([make_bin("B", b), make_bin("A", a)], ItemDims(50, 50, 100))
    assert [e.bin_id for e in choice.ranked] == ["A", "B"]
    assert choice.ranked[0].fill_fraction == pytest.approx(0.6)
    assert choice.ranked[0].rank_cost < choice.ranked[1].rank_cost


def test_reasons_per_bin():
    small = make_bin("small", np.zeros((2, 2), dtype=bool))
    frag_occ = np.zeros((10, 12), dtype=bool)
    frag_occ[:, ::3] = True
    fragmented = make_bin("frag", frag_occ)
    shallow = make_bin("shallow", np.zeros((10, 10), dtype=bool), free_depth=np.full((10, 10), 50.0))
    deep_short = make_bin("short", np.zeros((10, 10), dtype=bool), depth=50.0)
    full = make_bin("full", np.ones((10, 10), dtype=bool))
    good = make_bin("good", np.zeros((10, 10), dtype=bool))
    choice = choose_bin([small, fragmented, shallow, deep_short, full, good], ItemDims(30, 30, 100))
    assert [e.bin_id for e in choice.ranked] == ["good"]
    assert [(e.bin_id, e.reason) for e in choice.rejected] == [
        ("small", BinReason.TOO_SMALL),
        ("frag", BinReason.FRAGMENTED),
        ("shallow", BinReason.INSUFFICIENT_DEPTH),
        ("short", BinReason.TOO_SMALL),
        ("full", BinReason.INSUFFICIENT_FREE_AREA),
    ]
    assert choice.ranked[0].feasible and not any(e.feasible for e in choice.rejected)
    assert choice.any_fragmented
    assert all(e.rank_cost == float("inf") and e.best is None for e in choice.rejected)


def test_too_small_face():
    choice = choose_bin([make_bin("s", np.zeros((5, 5), dtype=bool))], ItemDims(60, 10, 10), allow_rotation=True)
    assert choice.best is None
    assert choice.rejected[0].reason is BinReason.TOO_SMALL
    assert "does not fit" in choice.rejected[0].detail


def test_rotation_in_bin_choice():
    occ = np.ones((10, 10), dtype=bool)
    occ[0:2, 0:6] = False
    b = make_bin("slot", occ)
    assert choose_bin([b], ItemDims(20, 60, 100), allow_rotation=False).best is None
    best = choose_bin([b], ItemDims(20, 60, 100)).best
    assert best.bin_id == "slot" and best.best.rotated


def test_fragmentation_measure():
    assert fragmentation(np.zeros((4, 4), dtype=bool)) == 0.0
    assert fragmentation(np.ones((4, 4), dtype=bool)) == 0.0
    occ = np.zeros((4, 4), dtype=bool)
    occ[:, 1] = True  # free: 4 + 8 cells, largest block 8
    assert fragmentation(occ) == pytest.approx(1 - 8 / 12)


def test_bin_validation():
    occ = np.zeros((10, 10), dtype=bool)
    fd = np.full((10, 10), 100.0)
    with pytest.raises(PlanningError, match="does not match face"):
        BinState("x", occ, fd, 10.0, 200.0, 100.0, 100.0)
    with pytest.raises(PlanningError, match="exceeds bin depth"):
        BinState("x", occ, fd, 10.0, 100.0, 100.0, 50.0)
    with pytest.raises(PlanningError, match="NaN"):
        BinState("x", occ, np.full((10, 10), np.nan), 10.0, 100.0, 100.0, 100.0)
    with pytest.raises(PlanningError, match="bin_id"):
        BinState("", occ, fd, 10.0, 100.0, 100.0, 100.0)
    with pytest.raises(PlanningError, match="depth_mm"):
        ItemDims(10, 10, float("nan"))
    b = BinState("x", occ, fd, 10.0, 100.0, 100.0, 100.0)
    with pytest.raises(PlanningError, match="empty"):
        choose_bin([], ItemDims(10, 10, 10))
    with pytest.raises(PlanningError, match="duplicate"):
        choose_bin([b, b], ItemDims(10, 10, 10))
    with pytest.raises(PlanningError, match="ItemDims"):
        choose_bin([b], (10, 10, 10))
