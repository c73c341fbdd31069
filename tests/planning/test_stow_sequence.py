"""The stow primitive sequence built from a placement and an optional sweep plan."""

from __future__ import annotations

import dataclasses

import pytest

from planning.bins import ItemDims
from planning.placement import Placement
from planning.stow import Approach, CloseBand, EjectItem, ExtendBlade, OpenBand, Retract, Sweep, stow_primitives
from planning.sweep import PlanningError, SweepPlan, SweepReason

ITEM = ItemDims(90.0, 110.0, 100.0)
PLACE = Placement(200.0, 0.0, 90.0, 110.0, 0.0)
PLAN = SweepPlan(SweepReason.OK, "sweep", entry_mm=(255.0, 55.0), band_mm=(0.0, 110.0), direction=-1,
                 distance_mm=52.5, shifts_mm={2: -52.5}, predicted_force_n=6.6, force_limit_n=9.9, placement=PLACE)


def test_without_a_sweep() -> None:
    steps = stow_primitives(PLACE, None, ITEM, bin_depth_mm=350.0)
    assert [type(s) for s in steps] == [Approach, OpenBand, EjectItem, Retract, CloseBand]
    app, eject, retract = steps[0], steps[2], steps[3]
    assert isinstance(app, Approach) and app.target_mm == (245.0, 55.0, -50.0) and app.force_limit_n == 15.0
    assert isinstance(eject, EjectItem) and (eject.x_mm, eject.y_mm, eject.depth_mm) == (200.0, 0.0, 100.0)
    assert isinstance(retract, Retract) and not retract.with_blade and retract.distance_mm == 50.0
    assert all(s.timeout_s > 0 and s.force_limit_n > 0 for s in steps)


@pytest.mark.parametrize("hold", [False, True])
def test_with_a_sweep_the_limit_comes_from_the_plan(hold: bool) -> None:
    plan = dataclasses.replace(PLAN, hold=hold, squeeze_mm={2: 10.0} if hold else {})
    steps = stow_primitives(PLACE, plan, ITEM, bin_depth_mm=350.0)
    assert [type(s) for s in steps] == [Approach, OpenBand, ExtendBlade, Sweep, EjectItem, Retract, CloseBand]
    blade, sweep, retract = steps[2], steps[3], steps[5]
    assert isinstance(blade, ExtendBlade) and blade.entry_mm == (255.0, 55.0) and not blade.horizontal
    assert isinstance(sweep, Sweep) and (sweep.direction, sweep.distance_mm, sweep.hold) == (-1, 52.5, hold)
    assert sweep.force_limit_n == 9.9 and sweep.timeout_s == pytest.approx(52.5 / 50.0 * 2.0 + 1.0)
    assert isinstance(retract, Retract) and retract.with_blade and retract.distance_mm == 400.0


def test_a_tip_extends_the_blade_horizontally() -> None:
    plan = dataclasses.replace(PLAN, tip=True, tipped_item=2)
    blade = stow_primitives(PLACE, plan, ITEM, bin_depth_mm=350.0)[2]
    assert isinstance(blade, ExtendBlade) and blade.horizontal


def test_invalid_inputs() -> None:
    with pytest.raises(PlanningError, match="Placement"):
        stow_primitives((200.0, 0.0), None, ITEM, bin_depth_mm=350.0)  # type: ignore[arg-type]
    with pytest.raises(PlanningError, match="not executable"):
        stow_primitives(PLACE, SweepPlan(SweepReason.FORCE_OVER_LIMIT, "heavy"), ITEM, bin_depth_mm=350.0)
    with pytest.raises(PlanningError, match="not the one"):
        stow_primitives(dataclasses.replace(PLACE, x_mm=0.0), PLAN, ITEM, bin_depth_mm=350.0)
    with pytest.raises(PlanningError, match="does not match"):
        stow_primitives(PLACE, None, ItemDims(100.0, 110.0, 100.0), bin_depth_mm=350.0)
    with pytest.raises(PlanningError, match="bin_depth_mm"):
        stow_primitives(PLACE, None, ITEM, bin_depth_mm=float("nan"))
    with pytest.raises(PlanningError, match="timeout_factor"):
        stow_primitives(PLACE, None, ITEM, bin_depth_mm=350.0, timeout_factor=0.5)
    with pytest.raises(PlanningError, match="sweep_plan must be"):
        stow_primitives(PLACE, "sweep", ITEM, bin_depth_mm=350.0)  # type: ignore[arg-type]
    rotated = Placement(200.0, 0.0, 110.0, 90.0, 0.0, rotated=True)
    assert isinstance(stow_primitives(rotated, None, ITEM, bin_depth_mm=350.0)[2], EjectItem)
