"""planning.pick_decision: the depth smoothing (a noisy flat face becomes flat enough for the cup, edges stay), and
the cup's way in: an item in front of the target blocks it all the way to the opening, even when the camera has no
return from it (a dark product)."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.camera import Intrinsics
from drivers.sim.camera import Box, render
from perception.learned.embedding import Match
from perception.learned.pick_model import PickInstance, PickSegmentation
from perception.occupancy import BinGeometry
from planning.pick_decision import Identification, median_within, plan_candidates


def test_median_within_smooths_the_mask_and_leaves_the_rest() -> None:
    rng = np.random.default_rng(0)
    depth = np.full((60, 80), 0.7, np.float32)  # the back wall
    mask = np.zeros(depth.shape, bool)
    mask[10:40, 10:50] = True
    depth[mask] = 0.6 + rng.normal(0.0, 0.008, int(mask.sum()))  # a face at 0.6 m, 8 mm noise
    depth[15, 15] = np.nan  # a missing return inside
    out = median_within(depth, mask)
    assert np.nanstd(out[mask]) < 0.5 * np.nanstd(depth[mask])
    assert np.array_equal(out[~mask], depth[~mask])  # off the mask: untouched
    assert np.isfinite(out[15, 15])  # filled from its neighbours on the face
    assert np.all(np.abs(out[mask] - 0.6) < 0.02)  # no wall depth leaks in across the edge
    assert np.array_equal(median_within(depth, np.zeros_like(mask)), depth, equal_nan=True)


K = Intrinsics.from_fov(320, 240)
GEO = BinGeometry((-0.2, 0.15, 0.35), 0.4, 0.3, 0.3)  # 350 mm off, 300 mm deep; the opening's bottom-left (y down)
TARGET = Box((0.10, 0.0, 0.61), (0.10, 0.10, 0.02), 1)  # its face 250 mm into the bin
# Near the opening, beside the camera's line of sight to the target's visible middle but across the cup's
# straight way in to it (the camera looks past its edge).
FRONT = Box((0.1025, 0.0, 0.38), (0.075, 0.10, 0.02), 2)


def _frame(front: str) -> tuple[np.ndarray, np.ndarray]:
    depth, labels = render([TARGET, FRONT], K)
    depth = np.where(np.isnan(depth), np.float32(0.65), depth).astype(np.float32)  # the back wall
    if front == "dark":
        depth[labels == 2] = np.nan  # a dark product: the camera has no return from it
    return depth, labels.astype(np.int32)


def _ident(labels: np.ndarray) -> Identification:
    inst = {i: PickInstance(i, 0.9, "free", (0.0, 1.0, 0.0, 0.0), int((labels == i).sum())) for i in (1, 2)}
    return Identification(PickSegmentation(labels, inst), Match(1, 0.9, {1: 0.9, 2: 0.1}, 0.6), "free")


@pytest.mark.parametrize("front", ["returns", "dark"])
def test_the_cups_way_in_is_clear_of_an_item_in_front_even_one_near_the_opening_or_without_returns(
        front: str) -> None:
    depth, labels = _frame(front)
    decision = plan_candidates(_ident(labels), depth, K, GEO)
    assert decision.candidates is not None
    lo = np.array(FRONT.center[:2]) - np.array(FRONT.size[:2]) / 2
    hi = np.array(FRONT.center[:2]) + np.array(FRONT.size[:2]) / 2
    # The cup goes straight in along the face's normal: no candidate may have the front item across that way.
    # Before, the way was checked only 15 cm off the target's face (and a dark item was no obstacle at all).
    for c in decision.candidates.candidates:
        assert not np.all((c.point[:2] >= lo - 0.015) & (c.point[:2] <= hi + 0.015)), (c.point, c.clearance)
