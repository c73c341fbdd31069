"""The seeded pod/bin world model: generator, queries, mutations (insert, remove, sweep) and rendering."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.camera import Intrinsics
from drivers.sim.world import (
    Bin,
    G,
    Item,
    PlacedItem,
    Pod,
    WorldError,
    generate_bin,
    generate_pod,
    ground_truth_eligibility,
    in_front_of,
    insert,
    occupied,
    remove,
    resting_on,
    supporters,
    sweep,
    visible_fraction,
    visible_items,
)
from drivers.sim.world_render import BAND, ITEM, WALL, CameraPose, render_bin

K = Intrinsics(width=160, height=120, fx=100.0, fy=100.0, cx=80.0, cy=60.0)


def item(item_id: int, w: float = 100.0, h: float = 100.0, d: float = 50.0, *, mass: float = 1.0,
         stiffness: float = 1.0) -> Item:
    return Item(item_id, f"P{item_id}", (w, h, d), mass, stiffness)


def empty_bin(width: float = 400.0, height: float = 300.0, depth: float = 350.0) -> Bin:
    return Bin("b", width, height, depth, band_height_mm=150.0)


def collide(a: PlacedItem, b: PlacedItem) -> bool:
    return all(min(a.hi[k], b.hi[k]) - max(a.lo[k], b.lo[k]) > 1e-6 for k in range(3))


# ------------------------------------------------------------------------------------------ model


def test_item_and_bin_validation_raise_clear_errors() -> None:
    with pytest.raises(WorldError, match="sizes must be positive"):
        Item(1, "P", (10.0, -1.0, 10.0), 1.0)
    with pytest.raises(WorldError, match="stiffness"):
        Item(1, "P", (10.0, 10.0, 10.0), 1.0, stiffness=1.5)
    with pytest.raises(WorldError, match="item_id"):
        Item(0, "P", (10.0, 10.0, 10.0), 1.0)
    with pytest.raises(WorldError, match="finite"):
        Item(1, "P", (10.0, math.nan, 10.0), 1.0)
    with pytest.raises(WorldError, match="positive"):
        Bin("b", 0.0, 100.0, 100.0)
    with pytest.raises(WorldError, match="outside bin"):
        Bin("b", 100.0, 100.0, 100.0, items=[PlacedItem(item(1, 50, 50, 50), (60.0, 0.0, 0.0))])
    with pytest.raises(WorldError, match="item 1 would overlap item 2"):
        Bin("b", 300.0, 200.0, 200.0, items=[PlacedItem(item(1), (0.0, 0.0, 0.0)),
                                             PlacedItem(item(2), (50.0, 0.0, 10.0))])
    with pytest.raises(WorldError, match="duplicate bin ids"):
        Pod("p", [empty_bin(), empty_bin()])


# -------------------------------------------------------------------------------------- generator


def test_generator_is_deterministic_per_seed() -> None:
    for seed in range(20):
        assert generate_bin(seed, density=0.7) == generate_bin(seed, density=0.7)
        assert generate_bin(np.random.default_rng(seed)) == generate_bin(np.random.default_rng(seed))
    assert generate_bin(1, density=0.8) != generate_bin(2, density=0.8)
    assert generate_pod(4) == generate_pod(4)


def test_generated_bins_are_valid_realistic_and_varied_over_many_seeds() -> None:
    seen = {"leaning": 0, "stacked": 0, "hidden": 0, "blocked": 0, "below": 0}
    for seed in range(150):
        density = (seed % 6) / 5
        b = generate_bin(seed, density=density, width_mm=(230.0, 330.0, 450.0)[seed % 3])
        if density == 0.0:
            assert b.items == []
        for i, p in enumerate(b.items):
            assert all(p.lo[k] >= 0 and p.hi[k] <= lim + 1e-9
                       for k, lim in enumerate((b.width_mm, b.height_mm, b.depth_mm)))
            assert not any(collide(p, q) for q in b.items[i + 1:])
            assert all(20.0 <= s <= 300.0 for s in p.item.size_mm)
            assert 0.05 <= p.item.mass_kg <= 3.0 and 0.0 <= p.item.stiffness <= 1.0
            if p.lo[1] > 0:  # stacked items rest on something
                assert supporters(b, p.item_id)
                seen["stacked"] += 1
            if p.leaning:
                w, h, _ = p.item.size_mm
                assert h > w and p.lo[1] == 0
                seen["leaning"] += 1
        seen["hidden"] += len(b.items) - len(visible_items(b))
        for v in ground_truth_eligibility(b).values():
            seen[v] = seen.get(v, 0) + 1
    assert all(n > 5 for n in seen.values()), seen


def test_denser_bins_hold_more_items() -> None:
    def mean_count(density: float) -> float:
        return float(np.mean([len(generate_bin(s, density=density).items) for s in range(40)]))

    assert mean_count(0.0) == 0 < mean_count(0.2) < mean_count(0.6) < mean_count(1.0)


def test_generated_pod_has_unique_item_ids() -> None:
    pod = generate_pod(7, rows=3, cols=3)
    ids = [p.item_id for b in pod.bins for p in b.items]
    assert len(pod.bins) == 9 and len(ids) == len(set(ids)) and ids
    assert pod.bin("pod-1B").bin_id == "pod-1B"


# ---------------------------------------------------------------------------------------- queries


def hand_built() -> Bin:
    """A (floor, front) carries B; C sits behind A; D beside A; E behind D and taller; F alone at the back."""
    b = empty_bin()
    insert(b, item(1, 100, 80, 60), (0.0, 0.0, 0.0))  # A
    insert(b, item(2, 60, 50, 40), (10.0, 80.0, 5.0))  # B on A
    insert(b, item(3, 80, 60, 60), (10.0, 0.0, 100.0))  # C behind A, lower than A: hidden
    insert(b, item(4, 80, 50, 60), (120.0, 0.0, 0.0))  # D
    insert(b, item(5, 80, 150, 60), (130.0, 0.0, 80.0))  # E behind D, sticks out above it
    insert(b, item(6, 100, 100, 100), (280.0, 0.0, 240.0))  # F nothing in front
    return b


def test_queries_and_ground_truth_eligibility_on_a_hand_built_bin() -> None:
    b = hand_built()
    assert ground_truth_eligibility(b) == {1: "below", 2: "free", 3: "blocked", 4: "free", 5: "blocked", 6: "free"}
    assert supporters(b, 2) == [1] and resting_on(b, 1) == [2]
    assert in_front_of(b, 3) == [1] and in_front_of(b, 5) == [4]
    assert visible_items(b) == [1, 2, 4, 5, 6]
    assert visible_fraction(b, 3) == 0.0
    assert visible_fraction(b, 5) == pytest.approx((10 * 150 + 70 * 100) / (80 * 150))
    assert occupied(b)[0] == ((0.0, 0.0, 0.0), (100.0, 80.0, 60.0))


# -------------------------------------------------------------------------------------- mutations


def test_insert_validates_and_drops_onto_its_support() -> None:
    b = empty_bin()
    insert(b, item(1), (0.0, 0.0, 0.0))
    with pytest.raises(WorldError, match="would overlap item 1"):
        insert(b, item(2), (50.0, 0.0, 20.0))
    with pytest.raises(WorldError, match="already in bin"):
        insert(b, item(1), (200.0, 0.0, 0.0))
    with pytest.raises(WorldError, match="outside bin"):
        insert(b, item(3), (350.0, 0.0, 0.0))
    assert [p.item_id for p in b.items] == [1]  # failed inserts change nothing
    placed = insert(b, item(4, 50, 50, 50), (20.0, 170.0, 0.0))  # released above item 1: lands on it
    assert placed.position_mm == (20.0, 100.0, 0.0)
    assert insert(b, item(5, 50, 50, 50), (300.0, 50.0, 0.0), drop=False).position_mm == (300.0, 50.0, 0.0)


def test_remove_lets_items_above_drop() -> None:
    b = empty_bin()
    insert(b, item(1, 100, 100, 50), (0.0, 0.0, 0.0))
    insert(b, item(2, 100, 40, 50), (150.0, 0.0, 0.0))
    insert(b, item(3, 200, 30, 50), (20.0, 100.0, 0.0))  # bridges 1 and 2 but rests on 1 (taller)
    insert(b, item(4, 50, 50, 50), (40.0, 130.0, 0.0))  # on 3
    removed = remove(b, 1)
    assert removed.item_id == 1 and [p.item_id for p in b.items] == [2, 3, 4]
    assert b.get(3).position_mm == (20.0, 40.0, 0.0)  # now rests on item 2
    assert b.get(4).position_mm == (40.0, 70.0, 0.0)
    remove(b, 2)
    assert b.get(3).lo[1] == 0.0 and b.get(4).lo[1] == 30.0
    with pytest.raises(WorldError, match="no item 2"):
        remove(b, 2)


def row_bin(stiffness: float = 1.0) -> Bin:
    b = empty_bin()
    insert(b, item(1, 50, 100, 50, mass=0.5), (100.0, 0.0, 0.0))
    insert(b, item(2, 50, 100, 50, mass=1.5, stiffness=stiffness), (150.0, 0.0, 0.0))  # touches 1
    insert(b, item(3, 50, 100, 50), (300.0, 0.0, 0.0))
    insert(b, item(4, 40, 40, 40), (0.0, 0.0, 200.0))  # behind the paddle start: untouched
    return b


def test_sweep_frees_space_and_pushes_neighbours() -> None:
    b = row_bin()
    r = sweep(b, 90.0, +1, 60.0, (0.0, 50.0))
    assert r.travel_mm == r.relaxed_travel_mm == 60.0 and not r.stalled
    assert r.moved_mm == {1: 50.0, 2: 50.0}
    assert b.get(1).lo[0] == 150.0 and b.get(2).lo[0] == 200.0 and b.get(3).lo[0] == 300.0
    assert r.free_span_mm == (90.0, 150.0)
    assert not any(p.lo[0] < 150.0 < p.hi[0] or 90.0 <= p.lo[0] < 150.0 for p in b.items if p.lo[2] < 100)
    assert r.force_n == pytest.approx(0.4 * G * 2.0)
    # Sweeping left from the right of item 3 pushes it (and only it) towards the others.
    r = sweep(b, 360.0, -1, 60.0, (0.0, 50.0))
    assert r.moved_mm == {3: -50.0} and b.get(3).lo[0] == 250.0 and r.stalled is False
    assert r.free_span_mm == (300.0, 360.0)
    r = sweep(b, 310.0, -1, 100.0, (0.0, 50.0))  # 3, 2 and 1 now touch: they move as one
    assert r.moved_mm == pytest.approx({3: -90.0, 2: -90.0, 1: -90.0}) and b.get(1).lo[0] == 60.0


def test_sweep_chain_jams_at_the_wall_and_stalls() -> None:
    b = row_bin()
    r = sweep(b, 90.0, +1, 500.0, (0.0, 50.0))
    # 1 and 2 close the 100 mm gap to 3, which is pushed to the right wall (400): 150 mm of slack in all.
    assert r.stalled and r.relaxed_travel_mm == pytest.approx(160.0) and r.force_n == 40.0
    assert [b.get(i).lo[0] for i in (1, 2, 3)] == pytest.approx([250.0, 300.0, 350.0])
    with pytest.raises(WorldError, match="starts inside item 1"):
        sweep(b, 260.0, +1, 10.0, (0.0, 50.0))
    with pytest.raises(WorldError, match="direction"):
        sweep(b, 10.0, 0, 10.0, (0.0, 50.0))


def test_squishy_items_compress_and_stiffer_ones_push_back_harder() -> None:
    def push(stiffness: float) -> tuple[float, dict[int, float], float]:
        b = empty_bin()
        insert(b, item(1, 100, 100, 50, mass=0.5, stiffness=stiffness), (300.0, 0.0, 0.0))  # against the wall
        r = sweep(b, 290.0, +1, 20.0, (0.0, 50.0))
        assert r.relaxed_travel_mm == pytest.approx(10.0) and b.get(1).lo[0] == 300.0  # springs back
        return r.force_n, r.compression_mm, r.travel_mm

    soft, medium, rigid = push(0.2), push(0.5), push(1.0)
    assert soft[1] == pytest.approx({1: 10.0}) and medium[1] == pytest.approx({1: 10.0}) and rigid[1] == {}
    assert soft[2] == medium[2] == pytest.approx(20.0) and rigid[2] == pytest.approx(10.0)
    assert soft[0] < medium[0] < rigid[0] == 40.0
    assert soft[0] == pytest.approx(0.4 * G * 0.5 + (0.05 + 4.95 * 0.2) * 10.0)


def test_sweep_drops_items_whose_support_moved_away() -> None:
    b = empty_bin()
    insert(b, item(1, 100, 40, 50), (50.0, 0.0, 0.0))
    insert(b, item(2, 40, 40, 50), (50.0, 40.0, 0.0))  # on the left end of 1, above the band
    sweep(b, 40.0, +1, 110.0, (0.0, 30.0))
    assert b.get(1).lo[0] == 150.0 and b.get(2).position_mm == (50.0, 0.0, 0.0)


# -------------------------------------------------------------------------------------- rendering


def test_single_item_renders_at_the_expected_pixels_and_depth() -> None:
    b = empty_bin()  # 400 x 300 x 350, camera at (200, 150, -350) mm
    insert(b, item(7, 100, 100, 50), (150.0, 0.0, 100.0))
    v = render_bin(b, K)
    assert v.depth_m.dtype == np.float32 and v.instance.dtype == np.int32 and v.cls.dtype == np.uint8
    # Front face at z = 0.45 m spans x -0.05..0.05 m and y (down) 0.05..0.15 m.
    r, c = 60 + round(100 * 0.10 / 0.45), 80
    assert v.instance[r, c] == 7 and v.cls[r, c] == ITEM and v.depth_m[r, c] == pytest.approx(0.45)
    rows = np.flatnonzero((v.instance[:, c] == 7) & (np.abs(v.depth_m[:, c] - 0.45) < 1e-6))
    assert rows[0] == math.ceil(60 + 100 * 0.05 / 0.45) and rows[-1] == math.floor(60 + 100 * 0.15 / 0.45)
    cols = np.flatnonzero(v.instance[r] == 7)
    assert cols[0] == math.ceil(80 - 100 * 0.05 / 0.45) and cols[-1] == math.floor(80 + 100 * 0.05 / 0.45)
    assert set(np.unique(v.instance)) == {0, 7}
    uv = CameraPose().project(b, np.array([200.0, 50.0, 100.0]), K)
    assert uv == pytest.approx([80.0, 60 + 100 * 0.10 / 0.45])


def test_band_walls_and_background_are_labelled() -> None:
    v = render_bin(empty_bin(), K)
    # Band: y 140..160 mm (camera -0.01..0.01 m) at z 0.347..0.35 m, x over the whole opening.
    assert np.all(v.cls[59:62, 30:130] == BAND) and np.all(v.instance[59:62] == 0)
    assert v.depth_m[60, 80] == pytest.approx(0.347)
    assert v.cls[75, 80] == WALL and v.depth_m[75, 80] == pytest.approx(0.70)  # back wall
    assert v.cls[70, 30] == WALL and v.depth_m[70, 30] == pytest.approx(0.40)  # left wall at x = -0.2 m
    assert v.cls[0, 0] == 0 and np.isnan(v.depth_m[0, 0]) and v.instance[0, 0] == 0
    f = v.frame(seq=3, timestamp=1.5)
    assert f.intrinsics == K and f.seq == 3 and 0 < f.valid_fraction < 1


def test_hidden_items_do_not_appear_in_the_instance_image() -> None:
    # visible_items() is an orthographic front view: through the gap between items 1 and 4 the
    # perspective camera still sees the side of item 3, which lies behind item 1.
    assert 3 not in visible_items(hand_built()) and 3 in render_bin(hand_built(), K).visible_item_ids()
    b2 = empty_bin()
    insert(b2, item(1, 200, 150, 60), (100.0, 0.0, 0.0))
    insert(b2, item(2, 150, 120, 80), (120.0, 0.0, 60.0))  # directly behind, touching
    v2 = render_bin(b2, K)
    assert not np.any(v2.instance == 2) and np.any(v2.instance == 1)
    assert visible_items(b2) == [1] and ground_truth_eligibility(b2) == {1: "free", 2: "blocked"}


def test_generated_bins_render_consistently() -> None:
    for seed in range(10):
        b = generate_bin(seed, density=0.8)
        v = render_bin(b, K)
        ids = set(v.visible_item_ids())
        assert ids <= {p.item_id for p in b.items}
        assert np.all((v.instance > 0) == (v.cls == ITEM))
        assert np.all(np.isnan(v.depth_m) == (v.cls == 0))


def test_random_sweeps_and_removals_keep_generated_bins_valid() -> None:
    rng = np.random.default_rng(0)
    for seed in range(40):
        b = generate_bin(seed, density=0.9)
        for _ in range(6):
            if b.items and rng.random() < 0.3:
                remove(b, b.items[int(rng.integers(len(b.items)))].item_id)
                continue
            y0 = float(rng.uniform(0.0, 200.0))
            try:
                r = sweep(b, float(rng.uniform(0.0, b.width_mm)), int(rng.choice([-1, 1])),
                          float(rng.uniform(0.0, 150.0)), (y0, y0 + 40.0))
            except WorldError as exc:
                assert "starts inside item" in str(exc)
                continue
            assert 0.0 <= r.relaxed_travel_mm <= r.travel_mm <= r.requested_mm + 1e-9
            assert 0.0 <= r.force_n <= 40.0
            b.validate()
            assert all(p.lo[1] == 0.0 or supporters(b, p.item_id) for p in b.items)
