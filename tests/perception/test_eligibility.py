"""Eligibility classifier: hand-built world scenes per class, input validation, and agreement with
the simulated world's ground truth over generated bins (visible items only: hidden items have no
pixels and are absent from the classifier's output)."""

from collections import Counter

import numpy as np
import pytest

from drivers.sim.world import Bin, Item, generate_bin, ground_truth_eligibility, insert
from drivers.sim.world_render import render_bin
from perception.common import PerceptionError
from perception.eligibility import EligibilityParams, classify


def _item(i: int, size: tuple[float, float, float]) -> Item:
    return Item(i, f"P{i}", size, 0.5)


def _classify(b: Bin, **kw):
    v = render_bin(b)
    return v, classify(v.depth_m, v.instance, v.intrinsics, **kw)


def test_single_item_is_free():
    b = Bin("b", 450, 300, 350)
    insert(b, _item(1, (100, 80, 100)), (150, 0, 20))
    _, res = _classify(b)
    assert set(res) == {1} and res[1].kind == "free"


def test_stack_base_is_below_and_top_free():
    b = Bin("b", 450, 300, 350)
    insert(b, _item(1, (150, 80, 150)), (150, 0, 20))
    insert(b, _item(2, (80, 50, 80)), (180, 80, 40))
    _, res = _classify(b)
    assert ground_truth_eligibility(b) == {1: "below", 2: "free"}
    assert res[1].kind == "below" and res[1].below == (2,)
    assert res[2].kind == "free"


def test_item_behind_a_shorter_one_is_blocked():
    b = Bin("b", 450, 300, 350)
    insert(b, _item(1, (150, 80, 100)), (150, 0, 10))
    insert(b, _item(2, (120, 200, 80)), (160, 0, 150))
    _, res = _classify(b)
    assert ground_truth_eligibility(b) == {1: "free", 2: "blocked"}
    assert res[2].kind == "blocked" and res[2].blocked_by == (1,)
    assert res[1].kind == "free"


def test_blocked_wins_over_below():
    b = Bin("b", 450, 300, 350)
    insert(b, _item(1, (150, 60, 60)), (150, 0, 10))  # in front
    insert(b, _item(2, (150, 100, 150)), (150, 0, 100))  # behind, carries 3
    insert(b, _item(3, (80, 60, 80)), (180, 100, 130))
    _, res = _classify(b)
    assert ground_truth_eligibility(b)[2] == "blocked"
    assert res[2].kind == "blocked" and 3 in res[2].below


def test_side_by_side_items_are_free():
    b = Bin("b", 450, 300, 350)
    insert(b, _item(1, (100, 120, 100)), (60, 0, 5))
    insert(b, _item(2, (100, 120, 100)), (160, 0, 30))
    insert(b, _item(3, (100, 120, 100)), (260, 0, 0))
    _, res = _classify(b)
    assert {k: e.kind for k, e in res.items()} == {1: "free", 2: "free", 3: "free"}


def test_hidden_item_is_absent():
    b = Bin("b", 450, 300, 350)
    insert(b, _item(1, (200, 150, 100)), (125, 0, 10))
    insert(b, _item(2, (60, 40, 60)), (195, 0, 200))
    v, res = _classify(b)
    assert 2 not in v.visible_item_ids() and set(res) == {1}


def test_not_item_labels_small_segments_and_item_labels():
    b = Bin("b", 450, 300, 350)
    insert(b, _item(1, (100, 80, 100)), (100, 0, 20))
    insert(b, _item(2, (100, 80, 100)), (250, 0, 20))
    v = render_bin(b)
    inst = v.instance.copy()
    v0, u0 = np.argwhere((inst == 0) & np.isfinite(v.depth_m))[0]
    inst[v0, u0] = 7  # a one-pixel segment on a wall
    res = classify(v.depth_m, inst, v.intrinsics, not_item_labels={2}, params=EligibilityParams(min_pixels=5))
    assert res[2].kind == "not_item" and res[7].kind == "not_item" and res[1].kind == "free"
    assert "too small" in res[7].reason
    res = classify(v.depth_m, v.instance, v.intrinsics, item_labels={1})
    assert res[2].kind == "not_item" and res[1].kind == "free"


def test_band_and_walls_do_not_block():
    # The band (instance 0) occludes the item's middle; only labelled segments take part.
    b = Bin("b", 450, 300, 350)
    insert(b, _item(1, (100, 250, 100)), (150, 0, 5))
    _, res = _classify(b)
    assert res[1].kind == "free"


def test_empty_scene_and_validation(kp):
    depth = np.full((kp.height, kp.width), np.nan, np.float32)
    inst = np.zeros(depth.shape, np.int32)
    assert classify(depth, inst, kp) == {}
    with pytest.raises(PerceptionError, match="instance must be an integer"):
        classify(depth, inst.astype(np.float32), kp)
    with pytest.raises(PerceptionError, match="does not match depth shape"):
        classify(depth, inst[:-1], kp)
    with pytest.raises(PerceptionError, match="float32"):
        classify(depth.astype(np.float64), inst, kp)
    with pytest.raises(PerceptionError, match="item_labels"):
        classify(depth, inst, kp, item_labels="12")
    with pytest.raises(PerceptionError, match="min_pixels"):
        EligibilityParams(min_pixels=0)


def _agreement(seeds: range = range(40), densities: tuple[float, ...] = (0.3, 0.6, 0.9)) -> tuple[float, int, Counter]:
    conf: Counter = Counter()
    for seed in seeds:
        for density in densities:
            b = generate_bin(seed, density=density)
            v = render_bin(b)
            gt = ground_truth_eligibility(b)
            res = classify(v.depth_m, v.instance, v.intrinsics)
            for i in v.visible_item_ids():  # hidden items have no pixels: not classifiable, not counted
                conf[(gt[i], res[i].kind)] += 1
    n = sum(conf.values())
    return sum(c for (g, k), c in conf.items() if g == k) / n, n, conf


@pytest.fixture(scope="module")
def agreement():
    return _agreement()


def test_acceptance_agreement_95(agreement):
    # Issue 5 acceptance: 0.912 before the seam / see-through / hidden-bottom rules, 0.980 after.
    rate, n, conf = agreement
    assert n >= 667
    assert rate >= 0.95, f"agreement {rate:.3f} over {n} visible items; (truth, predicted): {sorted(conf.items())}"


def test_agreement_on_unseen_seeds_and_densities():
    # Seeds and densities the rules were not studied on (0.952 over 1143 items when written; 0.892 before).
    rate, n, conf = _agreement(range(1000, 1050), (0.2, 0.5, 0.8, 1.0))
    assert n > 1000
    assert rate >= 0.93, f"agreement {rate:.3f} over {n} visible items; (truth, predicted): {sorted(conf.items())}"
