"""Stows that sweep: the simulated cell plans a sweep for a fragmented bin and the stow chart executes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cellctl.commands.sim import SimOptions, run_sim
from cellctl.eventlog import read_log
from cellctl.workcells.sim_perception import WorldPerception
from drivers.sim.cell import SimCell
from drivers.sim.faults import profile
from drivers.sim.world import Bin, Item, Pod, insert
from planning.bins import ItemDims
from planning.sweep import plan_sweep
from statecharts.workcell import ItemArrival, Primitive, StowOption

SEED = 5  # a stow run of this seed sweeps (twice in 100 cycles)


# ----------------------------------------------------------------------------------------------- the whole cell


@pytest.fixture(scope="module")
def stow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[Any]]:
    log = tmp_path_factory.mktemp("sweep") / "stow.mcap"
    summary = run_sim(SimOptions("stow", 100, SEED, log=log, perception="oracle"))
    return summary, list(read_log(Path(log), topics={"port.call", "port.reply"}))


def _calls(records: list[Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(call payload, reply payload) pairs in call order."""
    replies = {r.payload["seq"]: r.payload for r in records if r.topic == "port.reply"}
    return [(r.payload, replies[r.payload["seq"]]) for r in records if r.topic == "port.call"]


def test_stow_completion_stays_above_95_percent(stow_run: tuple[dict[str, Any], list[Any]]) -> None:
    summary, _ = stow_run
    assert summary["end_state"] == "complete" and summary["reports"] == 100
    assert summary["outcomes"]["done"] >= 95, summary
    assert summary["outcomes"]["fault"] == 0, summary


def test_a_swept_stow_is_verified_and_reported_done(stow_run: tuple[dict[str, Any], list[Any]]) -> None:
    _, records = stow_run
    calls = _calls(records)
    done_items = {c["args"]["report"]["item_id"] for c, _ in calls
                  if c["method"] == "report" and c["args"]["report"]["outcome"] == "done"}
    swept_verified = []
    for i, (call, reply) in enumerate(calls):
        if call["method"] != "verify_stow" or call["args"]["option"]["sweep"] is None:
            continue
        option = StowOption.model_validate(call["args"]["option"])
        # The motions of this attempt (back to its approach) include the option's sweep, done.
        moves = []
        for c, r in reversed(calls[:i]):
            if c["method"] != "move":
                continue
            moves.append((c["args"]["motion"], r["result"]))
            if c["args"]["motion"]["primitive"] == "approach":
                break
        prims = [m["primitive"] for m, _ in reversed(moves)]
        assert prims == ["approach", "extend_blade", "sweep", "eject_item", "retract"], prims
        assert all(r["outcome"] == "done" for _, r in moves)
        sweep_motion = next(m for m, _ in moves if m["primitive"] == "sweep")
        assert option.sweep is not None and sweep_motion["force_limit_n"] == option.sweep.force_limit_n
        eject = next(m for m, _ in moves if m["primitive"] == "eject_item")
        assert (eject["params"]["x"], eject["params"]["y"]) == (option.x_mm, option.y_mm)
        if reply["result"]["ok"]:
            swept_verified.append(call["args"]["item"]["item_id"])
    assert swept_verified, "no swept stow was verified"
    assert set(swept_verified) <= done_items


def test_sweep_force_never_exceeds_its_limit_unanswered(stow_run: tuple[dict[str, Any], list[Any]]) -> None:
    _, records = stow_run
    calls = _calls(records)
    sweeps = 0
    for i, (call, reply) in enumerate(calls):
        if call["method"] != "move" or call["args"]["motion"]["primitive"] != "sweep":
            continue
        sweeps += 1
        motion, result = call["args"]["motion"], reply["result"]
        assert motion["force_limit_n"] is not None
        if result["peak_force_n"] > motion["force_limit_n"]:
            # The guard tripped and the chart withdrew the arm before anything else.
            assert result["outcome"] == "force_limit"
            following = next(c for c, _ in calls[i + 1:] if c["method"] == "move")
            assert following["args"]["motion"]["primitive"] == "retract"
    assert sweeps >= 1


# ----------------------------------------------------------------------------------------------- one bin


def _cell(*bins: Bin) -> SimCell:
    cell = SimCell(11, profile("none"))
    cell.pod = Pod("T1", list(bins))
    cell.versions = {b.bin_id: 0 for b in bins}
    return cell


def _fragmented() -> Bin:
    # Free floor: 100..150 and 250..400; a 180 x 100 mm item (too tall on its side) fits only once box 2 is
    # pushed aside.
    b = Bin("T1-0A", 400.0, 170.0, 350.0, band_height_mm=160.0)
    insert(b, Item(1, "A", (100.0, 150.0, 200.0), 1.0, 1.0), (0.0, 0.0, 0.0))
    insert(b, Item(2, "B", (100.0, 150.0, 200.0), 0.5, 1.0), (150.0, 0.0, 0.0))
    return b


ARRIVAL = ItemArrival(item_id="900", sku="SKU0900", width_mm=180.0, height_mm=100.0, depth_mm=100.0, mass_kg=0.4)


def test_stow_plan_sweeps_a_fragmented_bin_with_the_planned_motion() -> None:
    b = _fragmented()
    cell = _cell(b)
    perception = WorldPerception(cell)
    plan = perception.stow_plan(ARRIVAL)
    assert plan.options, plan.reason
    option = plan.options[0]
    assert option.sweep is not None and option.bin_id == b.bin_id
    dims = ItemDims(180.0, 100.0, 100.0)
    expect = plan_sweep(perception.geometry_state(b, 100.0), perception.known_items(b), dims,
                        allow_tip=False, allow_squeeze=False)
    assert expect.ok and expect.entry_mm is not None and expect.band_mm is not None and expect.placement
    assert [m.primitive for m in option.steps] == [Primitive.APPROACH, Primitive.EXTEND_BLADE, Primitive.SWEEP,
                                                   Primitive.EJECT_ITEM, Primitive.RETRACT]
    assert (option.sweep.entry_x_mm, option.sweep.entry_y_mm) == expect.entry_mm
    assert (option.sweep.direction, option.sweep.distance_mm) == (expect.direction, expect.distance_mm)
    assert (option.sweep.predicted_force_n, option.sweep.force_limit_n) == (expect.predicted_force_n,
                                                                            expect.force_limit_n)
    assert (option.x_mm, option.y_mm, option.rotated) == (expect.placement.x_mm, expect.placement.y_mm,
                                                          expect.placement.rotated)
    sweep = next(m for m in option.steps if m.primitive is Primitive.SWEEP)
    assert sweep.params == ({
        "bin": 0.0, "x": option.sweep.entry_x_mm, "direction": float(option.sweep.direction),
        "distance": option.sweep.distance_mm, "y_lo": expect.band_mm[0], "y_hi": expect.band_mm[1]})
    assert sweep.force_limit_n == option.sweep.force_limit_n
    approach = option.steps[0]
    assert approach.params == {"bin": 0.0, "x": option.x_mm, "y": option.y_mm, "rotated": float(option.rotated)}
    assert perception.stow_plan(ARRIVAL) == plan  # deterministic

    # Played on the cell's physics: the push stays under its limit and the item then goes in where planned.
    phys = cell.physics("sweep", sweep.params, sweep.force_limit_n)
    assert phys.contact_n <= sweep.force_limit_n
    assert "moved 1 items" in phys.commit(None)
    cell.held = Item(900, "SKU0900", (180.0, 100.0, 100.0), 0.4)
    eject = next(m for m in option.steps if m.primitive is Primitive.EJECT_ITEM)
    assert "item 900 in T1-0A" in cell.physics("eject_item", eject.params, eject.force_limit_n).commit(None)
    assert b.get(900).lo[:2] == (option.x_mm, option.y_mm)
    assert perception.verify(ARRIVAL, option).ok


def test_plain_options_rank_before_sweep_options() -> None:
    roomy = Bin("T1-0B", 400.0, 300.0, 350.0, band_height_mm=290.0)
    plan = WorldPerception(_cell(_fragmented(), roomy)).stow_plan(ARRIVAL)
    kinds = [(o.bin_id, o.sweep is not None) for o in plan.options]
    assert kinds[0] == ("T1-0B", False) and kinds[-1] == ("T1-0A", True), kinds
    assert [s for _, s in kinds] == sorted(s for _, s in kinds)  # no plain option after a sweep option
    # With enough bins that take the item as it is, no sweep is planned.
    plan = WorldPerception(_cell(_fragmented(), roomy, Bin("T1-0C", 400.0, 300.0, 350.0))).stow_plan(ARRIVAL)
    assert plan.options and all(o.sweep is None for o in plan.options)
