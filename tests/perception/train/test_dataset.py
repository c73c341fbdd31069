"""The training data set (perception.train.dataset): deterministic, on the contract's tensors, true to the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivers.sim.world import ground_truth_eligibility
from perception.eligibility import KINDS
from perception.learned.contracts import CROP, INPUT_H, INPUT_W, MASK_H, MASK_W, QUERIES
from perception.learned.preprocess import frame_tensor, resize_nearest
from perception.train.dataset import (
    SEED_RANGES,
    DatasetError,
    View,
    embedding_pairs,
    load_split,
    make_view,
    read_shard,
    scene,
    split_seeds,
    stow_query_class,
    write_shard,
)

SEEDS = (0, 2)  # seed 0: five items and the band; seed 2: six items


@pytest.fixture(scope="module")
def views() -> dict[int, View]:
    return {s: make_view(s) for s in SEEDS}


def test_same_seed_same_arrays(views: dict[int, View]) -> None:
    again = make_view(SEEDS[0])
    first = views[SEEDS[0]]
    for name in ("image", "sem", "query_masks", "query_class", "query_status", "query_items", "cell_crops",
                 "ref_crops"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name), err_msg=name)
    assert again.cell_products == first.cell_products
    assert not np.array_equal(views[SEEDS[0]].image, views[SEEDS[1]].image)


def test_shapes_and_dtypes_are_the_contracts(views: dict[int, View]) -> None:
    v = views[SEEDS[0]]
    assert (v.image.shape, v.image.dtype) == ((4, INPUT_H, INPUT_W), np.float32)
    assert (v.sem.shape, v.sem.dtype) == ((MASK_H, MASK_W), np.uint8)
    assert (v.query_masks.shape, v.query_masks.dtype) == ((QUERIES, MASK_H, MASK_W), np.bool_)
    for q in (v.query_class, v.query_status, v.query_items):
        assert (q.shape, q.dtype) == ((QUERIES,), np.int64)
    assert v.cell_crops.shape[1:] == v.ref_crops.shape[1:] == (3, CROP, CROP)
    assert v.cell_crops.dtype == v.ref_crops.dtype == np.float32


def test_targets_agree_with_the_truth(views: dict[int, View]) -> None:
    for seed, v in views.items():
        bin, frame, truth = scene(seed)
        assert frame.color is not None
        np.testing.assert_array_equal(v.image, frame_tensor(frame.color, frame.depth)[0])
        np.testing.assert_array_equal(v.sem, resize_nearest(truth.cls, MASK_H, MASK_W))
        grid = resize_nearest(truth.instance, MASK_H, MASK_W)
        status = ground_truth_eligibility(bin)
        objects = v.query_class == 0
        assert objects.any() and not v.query_masks[~objects].any()
        assert (v.query_status[~objects] == -1).all() and (v.query_items[~objects] == 0).all()
        assert v.query_masks.sum(axis=0).max() <= 1  # instances do not overlap
        for q in np.flatnonzero(objects):
            item = int(v.query_items[q])
            if item:
                np.testing.assert_array_equal(v.query_masks[q], grid == item)
                assert KINDS[v.query_status[q]] == status[item]
            else:  # the band, a segment that is not an item
                assert KINDS[v.query_status[q]] == "not_item"
                np.testing.assert_array_equal(v.query_masks[q], v.sem == 2)
        sizes = [int(v.query_masks[q].sum()) for q in np.flatnonzero(v.query_items)]
        assert sizes == sorted(sizes, reverse=True)
        stow = stow_query_class(v.query_class, v.query_status)
        assert ((stow == 0) == (objects & (v.query_status != KINDS.index("not_item")))).all()


def test_every_status_kind_occurs_over_a_few_views(views: dict[int, View]) -> None:
    seen = {KINDS[s] for v in views.values() for s in v.query_status if s >= 0}
    assert {"not_item", "free", "blocked"} <= seen


def test_splits_are_disjoint() -> None:
    (lo, hi), (hlo, hhi) = SEED_RANGES["train"], SEED_RANGES["heldout"]
    assert hi <= hlo or hhi <= lo
    assert not set(split_seeds("train", 50)) & set(split_seeds("heldout", 50))
    assert split_seeds("heldout", 3, start=2) == [hlo + 2, hlo + 3, hlo + 4]
    with pytest.raises(DatasetError):
        split_seeds("train", 10, start=hi - lo - 5)


def test_embedding_pairs(views: dict[int, View]) -> None:
    v = views[SEEDS[0]]
    assert len(v.cell_products) == len(v.cell_crops) >= 2
    assert len(v.ref_products) == 3 * len(v.cell_products)  # three references per product seen
    pairs = embedding_pairs(v.cell_products, v.ref_products, rng=1)
    np.testing.assert_array_equal(pairs, embedding_pairs(v.cell_products, v.ref_products, rng=1))
    assert set(pairs[:, 2]) == {0, 1}
    for i, j, same in pairs:
        assert (v.cell_products[i] == v.ref_products[j]) == bool(same)
    # a reference crop is the catalogue's photograph (another view), not the cell's crop
    assert not any(np.array_equal(c, r) for c in v.cell_crops for r in v.ref_crops)


def test_shards_round_trip(views: dict[int, View], tmp_path: Path) -> None:
    path = write_shard(tmp_path / "train-00000.npz", views.values())
    data = load_split([path])
    assert list(data["seed"]) == list(SEEDS)
    np.testing.assert_array_equal(data["query_masks"][1], views[SEEDS[1]].query_masks)
    assert list(data["cell_products"]) == [p for v in views.values() for p in v.cell_products]
    assert data["cell_crops"].shape[0] == len(data["cell_products"])
    seg = read_shard(write_shard(tmp_path / "seg.npz", views.values(), ("segmentation",)))
    emb = read_shard(write_shard(tmp_path / "emb.npz", views.values(), ("embedding",)))
    assert "cell_crops" not in seg and "image" not in emb
    np.testing.assert_array_equal(seg["image"], data["image"])
    np.testing.assert_array_equal(emb["ref_crops"], data["ref_crops"])
    np.savez(tmp_path / "other.npz", seed=np.arange(2))
    with pytest.raises(DatasetError, match="not a data shard"):
        read_shard(tmp_path / "other.npz")
    (tmp_path / "bad.npz").write_bytes(b"")
    with pytest.raises(Exception):  # noqa: B017 - numpy's own error for a file that is not an npz
        load_split([tmp_path / "bad.npz"])
