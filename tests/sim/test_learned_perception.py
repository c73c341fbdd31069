"""Issue 13: the simulated cell perceiving from camera frames alone, with the shipped models.

- The runtime never sees labels: with the renderer's labels replaced by noise, `cellctl sim --perception learned`
  makes exactly the same decisions (and the oracle, which reads them, does not).
- A look-alike planted beside the target: the cell picks the right one or refuses, never the other.
- Stow from frames: a dark item (no depth returns) is not free space; verify finds an item that settled lower.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import cellctl.workcells.sim_perception as sim_perception
from cellctl.commands.sim import SimOptions, run_sim
from cellctl.workcells.learned_models import load_models
from cellctl.workcells.learned_perception import CONTACT_MARGIN_MM, LearnedModels
from cellctl.workcells.sim_frames import sim_learned_perception
from drivers.sim.appearance import product_look
from drivers.sim.cell import SimCell
from drivers.sim.faults import profile
from drivers.sim.world import Bin, Item, insert, item_under
from statecharts.workcell import (
    EligibilityClass,
    ItemArrival,
    Motion,
    MotionOutcome,
    MotionResult,
    PickOrder,
    Primitive,
    StowOption,
)


@pytest.fixture(scope="module")
def models() -> LearnedModels:
    return load_models()


def _decisions(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "wall_s"}


def _noisy_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The renderer's instance and class labels become noise (its depth is kept)."""
    render = sim_perception.render
    rng = np.random.default_rng(99)

    def noise(*args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        depth, labels = render(*args, **kwargs)
        return depth, rng.integers(0, int(labels.max()) + 8, size=labels.shape).astype(labels.dtype)

    monkeypatch.setattr(sim_perception, "render", noise)


def test_learned_perception_decides_the_same_with_the_labels_replaced_by_noise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    learned = SimOptions("mixed", 6, 2, perception="learned")
    oracle = SimOptions("mixed", 6, 2, perception="oracle")
    clean_learned, clean_oracle = run_sim(learned), run_sim(oracle)
    _noisy_labels(monkeypatch)
    noisy_learned, noisy_oracle = run_sim(learned), run_sim(oracle)
    assert _decisions(noisy_learned) == _decisions(clean_learned)
    assert clean_learned["perception"] == "learned" and clean_learned["outcomes"]["done"] > 0
    # The patch bites: the oracle reads the labels, so noise changes what it decides.
    assert noisy_oracle["trace_sha256"] != clean_oracle["trace_sha256"]


def _look_alike_pairs(n: int) -> list[tuple[str, str]]:
    """(product, look-alike) pairs: for each product, the one of 40 others whose look is nearest (base and accent
    colours)."""
    from drivers.sim.appearance import product_look

    ids = [f"SKU{i:04d}" for i in range(300, 341)]
    base = {p: np.concatenate([product_look(p).base, product_look(p).accent]).astype(np.float64) for p in ids}
    out = []
    for p in ids[:n]:
        twin = min((q for q in ids if q != p), key=lambda q: float(np.linalg.norm(base[q] - base[p])))
        out.append((p, twin))
    return out


def test_a_look_alike_beside_the_target_is_never_picked_instead(models: LearnedModels) -> None:
    right = refused = 0
    for k, (product, twin) in enumerate(_look_alike_pairs(6)):
        cell = SimCell(20 + k, profile("none"))
        b = cell.pod.bins[0]
        b.items = []
        depth, width = 120.0, (b.width_mm - 40.0) / 2  # side by side, 10 mm apart, 15 mm from the walls
        insert(b, Item(9001, product, (width, 90.0, depth), 0.3), (15.0, 0.0, b.depth_mm - depth))
        insert(b, Item(9002, twin, (width, 90.0, depth), 0.3), (25.0 + width, 0.0, b.depth_mm - depth))
        perception = sim_learned_perception(cell, models)
        for item_id, pid in ((9001, product), (9002, twin)):
            order = PickOrder(order_id=f"O{k}{item_id}", item_id=str(item_id), bin_id=b.bin_id, product_id=pid)
            eligible = perception.eligibility(order)
            plan = perception.pick_plan(order)
            if not eligible.eligible or not plan.candidates:
                refused += 1
                assert eligible.cls is not EligibilityClass.FREE or not plan.candidates
                continue
            for c in plan.candidates:
                attach = next(s for s in c.steps if s.primitive is Primitive.ATTACH)
                under = item_under(b, attach.params["x"], attach.params["y"])
                assert under is not None and under.item_id == item_id, (product, twin, item_id, attach.params)
            right += 1
    assert right >= 3, f"only {right} of 12 orders picked ({refused} refused): the test shows nothing"


def _empty_first_bin(seed: int) -> tuple[SimCell, Bin]:
    cell = SimCell(seed, profile("none"))
    b = cell.pod.bins[0]
    b.items = []
    return cell, b


def _dark_product() -> str:
    """A product whose surface returns no depth at the bin's range (black plastic: IR albedo < 0.01)."""
    return next(p for p in (f"DARK-{n}" for n in range(1000)) if product_look(p).ir_albedo < 0.01)


def test_a_dark_item_without_depth_returns_is_not_free_space(models: LearnedModels) -> None:
    cell, b = _empty_first_bin(31)
    size = (150.0, 110.0, 120.0)
    insert(b, Item(9101, _dark_product(), size, 0.4), (100.0, 0.0, b.depth_mm - size[2]))
    perception = sim_learned_perception(cell, models)
    frame = perception.eoat.capture(b)
    r0, r1, c0, c1 = perception._face_box(b, perception.k, 100.0, 0.0, size[0], size[1], b.depth_mm - size[2])
    assert np.isnan(frame.depth[r0:r1, c0:c1]).mean() > 0.9  # the camera gets (almost) nothing back from it
    fmap = perception._face_map(b)
    cell_mm = perception.camera.cell_m * 1e3
    inner = fmap.free_depth[1:int(size[1] // cell_mm) - 1, int(100 // cell_mm) + 1:int(250 // cell_mm) - 1] * 1e3
    assert inner.max() <= b.depth_mm - size[2] + 5.0, "the item's face reads as free space"


def test_verify_finds_an_item_that_settled_below_where_it_was_put(models: LearnedModels) -> None:
    cell, b = _empty_first_bin(32)
    perception = sim_learned_perception(cell, models)
    arrival = ItemArrival(item_id="9201", width_mm=120.0, height_mm=80.0, depth_mm=150.0, mass_kg=0.3)
    perception.stow_plan(arrival)  # the plan's frames: verify compares with them
    option = StowOption(bin_id=b.bin_id, placement_index=0, x_mm=60.0, y_mm=60.0,
                        steps=(Motion(primitive=Primitive.RETRACT, params={"bin": 0.0}, timeout_s=1.0),))
    assert not perception.verify(arrival, option).ok  # nothing was put there
    placed = insert(b, Item(9201, "P-VERIFY", (120.0, 80.0, 150.0), 0.3), (60.0, 60.0, b.depth_mm - 150.0))
    assert placed.lo[1] == 0.0  # nothing held it up: it dropped to the floor
    got = perception.verify(arrival, option)
    assert got.ok and "put at 60" in got.detail, got.detail


def test_a_blocked_eject_caps_the_bins_free_depth_until_the_cell_moves_its_contents(models: LearnedModels) -> None:
    cell, b = _empty_first_bin(33)
    perception = sim_learned_perception(cell, models)
    arrival = ItemArrival(item_id="9301", width_mm=100.0, height_mm=80.0, depth_mm=200.0, mass_kg=0.3)
    others = tuple(o.bin_id for o in cell.pod.bins if o is not b)
    assert perception.stow_plan(arrival, others).options  # the empty bin takes it
    cell_mm = perception.camera.cell_m * 1e3
    x, y = 60.0, 0.0
    rows, cols = slice(0, int(80 // cell_mm)), slice(int(x // cell_mm), int((x + 100) // cell_mm))
    assert perception._face_map(b).free_depth[rows, cols].min() * 1e3 > 250.0  # the camera sees it free
    eject = Motion(primitive=Primitive.EJECT_ITEM, params={"bin": 0.0, "x": x, "y": y, "rotated": 0.0},
                   timeout_s=6.0, force_limit_n=35.0)
    perception.motion_result(eject, MotionResult(outcome=MotionOutcome.FORCE_LIMIT, elapsed_s=1.0))
    perception.stow_plan(arrival)
    capped = perception._face_map(b).free_depth[rows, cols] * 1e3
    assert capped.max() == pytest.approx(200.0 - CONTACT_MARGIN_MM, abs=1e-3)  # less than the item needs
    options = perception.stow_plan(arrival, others).options
    assert options
    for option in options:  # no plan puts it where it met something
        assert option.x_mm >= x + 100.0 or option.x_mm + 100.0 <= x or option.y_mm >= 80.0, option
    extract = Motion(primitive=Primitive.EXTRACT, params={"bin": 0.0, "x": 100.0, "y": 40.0}, timeout_s=6.0)
    perception.motion_result(extract, MotionResult(outcome=MotionOutcome.DONE, elapsed_s=1.0))
    perception.stow_plan(arrival)
    assert perception._face_map(b).free_depth[rows, cols].min() * 1e3 > 250.0  # a pick may have freed it


def test_an_empty_bins_state_for_the_sweep_planner_reaches_the_back_wall_exactly(models: LearnedModels) -> None:
    cell, b = _empty_first_bin(34)
    perception = sim_learned_perception(cell, models)
    state = perception.geometry_state(b, 100.0)  # the front-face map is float32 m: 0.3 m must not exceed 300 mm
    assert state.free_depth_mm.max() == b.depth_mm


def test_verify_finds_an_item_stowed_in_front_of_a_dark_one(models: LearnedModels) -> None:
    cell, b = _empty_first_bin(35)
    dark = (220.0, 160.0, 100.0)
    insert(b, Item(9401, _dark_product(), dark, 0.4), (40.0, 0.0, b.depth_mm - dark[2]))
    perception = sim_learned_perception(cell, models)
    arrival = ItemArrival(item_id="9402", width_mm=150.0, height_mm=100.0, depth_mm=120.0, mass_kg=0.3)
    perception.stow_plan(arrival)  # the plan's frame: no return from the dark item
    option = StowOption(bin_id=b.bin_id, placement_index=0, x_mm=75.0, y_mm=0.0,
                        steps=(Motion(primitive=Primitive.RETRACT, params={"bin": 0.0}, timeout_s=1.0),))
    assert not perception.verify(arrival, option).ok  # nothing there yet
    insert(b, Item(9402, "P-FRONT", (150.0, 100.0, 120.0), 0.3), (75.0, 0.0, b.depth_mm - dark[2] - 120.0))
    got = perception.verify(arrival, option)
    assert got.ok, got.detail
