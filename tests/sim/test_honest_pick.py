"""Issue 13, point 6 (an honest simulator): ATTACH and EXTRACT act on whatever lies under the cup, not on the
item the planner named, so a pick at the wrong point takes the wrong item, and the tote check counts it."""

from __future__ import annotations

from drivers.sim.cell import LEAK_KPA, VACUUM_KPA, SimCell
from drivers.sim.faults import profile
from drivers.sim.world import item_under


def _neighbours(cell: SimCell) -> tuple[int, int, int, float, float]:
    """A bin with two exposed items: (bin index, ordered id, other id, a point on the other's face)."""
    for i, b in enumerate(cell.pod.bins):
        exposed = []
        for p in b.items:
            x, y = (p.lo[0] + p.hi[0]) / 2, (p.lo[1] + p.hi[1]) / 2
            hit = item_under(b, x, y)
            if hit is not None and hit.item_id == p.item_id and p.item.mass_kg < 1.5:
                exposed.append((p.item_id, x, y))
        if len(exposed) >= 2:
            (ordered, _, _), (other, x, y) = exposed[:2]
            return i, ordered, other, x, y
    raise AssertionError("no bin with two exposed light items; pick another seed")


def test_the_cup_takes_what_is_under_it_and_the_tote_check_counts_the_wrong_item() -> None:
    cell = SimCell(3, profile("none"))
    i, ordered, other, x, y = _neighbours(cell)
    cell.ordered = ordered  # the FC ordered `ordered`; the planner's point is on `other`
    at = {"bin": float(i), "item": float(ordered), "x": x, "y": y}  # the label says `ordered`: it does not matter
    assert cell.physics("attach", at, None).vacuum_kpa == VACUUM_KPA  # something is under the cup: it seals
    assert cell.physics("extract", at, None).commit(None) == f"item {other} out of {cell.pod.bins[i].bin_id}"
    assert cell.held is not None and cell.held.item_id == other
    detail = cell.physics("place", {}, None).commit(None)
    assert detail == f"item {other} in the tote: the wrong item (order {ordered})"
    assert cell.wrong_items == 1 and [it.item_id for it in cell.tote] == [other]
    assert any(p.item_id == ordered for p in cell.pod.bins[i].items)  # the ordered one is still in its bin


def test_the_right_item_passes_the_tote_check() -> None:
    cell = SimCell(3, profile("none"))
    i, ordered, _, _, _ = _neighbours(cell)
    p = cell.pod.bins[i].get(ordered)
    at = {"bin": float(i), "item": float(ordered), "x": (p.lo[0] + p.hi[0]) / 2, "y": (p.lo[1] + p.hi[1]) / 2}
    cell.ordered = ordered
    cell.physics("extract", at, None).commit(None)
    assert cell.physics("place", {}, None).commit(None) == "item in the tote" and cell.wrong_items == 0


def test_an_empty_point_seals_nothing_and_extracts_nothing() -> None:
    cell = SimCell(3, profile("none"))
    b = cell.pod.bins[0]
    at = {"bin": 0.0, "item": float(b.items[0].item_id) if b.items else 1.0, "x": -50.0, "y": -50.0}
    assert cell.physics("attach", at, None).vacuum_kpa == LEAK_KPA
    phys = cell.physics("extract", at, None)
    assert phys.vacuum_kpa == LEAK_KPA and phys.commit(None) == "" and cell.held is None
