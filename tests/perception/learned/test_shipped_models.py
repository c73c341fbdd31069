"""The shipped models (models/*.onnx) fit their contracts and hold their held-out metrics; a corrupted, truncated
or wrong-shaped model gives the contract error.

Issue 13's acceptance asks for segmentation mean IoU >= 0.85 over the four stow classes, instance recall >= 0.9
at IoU 0.5, status accuracy >= 0.9 and product top-1 >= 0.95 among 50 products under lighting changes. The
shipped models reach the IoU and the top-1, not yet the instance recall and the status accuracy: those are
asserted at the level the models have (a regression floor, a little under their reports) and, separately, at the
acceptance level as strict expected failures, which turn into failures the day a model reaches them (then make
them plain tests). The held-out views here are a slice of the held-out seed range the reports measured on
(`perception.train.dataset.SEED_RANGES`), disjoint from the training seeds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cellctl.workcells.learned_models import SHIPPED_MODELS, model_files
from perception.learned.contracts import ContractError, ModelError
from perception.learned.session import open_model
from perception.train import dataset
from perception.train.evaluate import evaluate_embedding, evaluate_segmentation

SEG_VIEWS = 80  # held-out views for the segmenters
EMB_VIEWS = 40  # held-out views for the embedding (their crops cover more than 50 products)


def _split(n: int, *, embeddings: bool, start: int = 0) -> dict[str, np.ndarray]:
    seeds = dataset.split_seeds("heldout", n, start)
    views = [dataset.make_view(s, embeddings=embeddings) for s in seeds]
    part = "embedding" if embeddings else "segmentation"
    out: dict[str, np.ndarray] = {"seed": np.array(seeds)}
    if part == "segmentation":
        out.update({k: np.stack([getattr(v, k) for v in views]) for k in dataset.PARTS["segmentation"]})
    else:
        out["cell_crops"] = np.concatenate([v.cell_crops for v in views])
        out["ref_crops"] = np.concatenate([v.ref_crops for v in views])
        out["cell_products"] = np.array([p for v in views for p in v.cell_products], dtype=str)
        out["ref_products"] = np.array([p for v in views for p in v.ref_products], dtype=str)
    return out


@pytest.fixture(scope="module")
def seg_views() -> dict[str, np.ndarray]:
    return _split(SEG_VIEWS, embeddings=False)


def test_every_shipped_model_fits_its_contract_and_carries_its_training_record() -> None:
    for kind, path in model_files().items():
        assert path.parent == SHIPPED_MODELS and path.stat().st_size < 8 * 2**20, path
        session = open_model(path, kind)
        meta = session.metadata
        assert meta.training_seed is not None and meta.data_size > 0, kind
        report = json.loads(path.with_suffix(".report.json").read_text())
        assert report["kind"] == kind and report["metrics"] == meta.metrics


@pytest.fixture(scope="module")
def segmenter_metrics(seg_views: dict[str, np.ndarray]) -> dict[str, float]:
    return evaluate_segmentation(model_files()["segmenter"], "segmenter", seg_views)


@pytest.fixture(scope="module")
def pick_metrics(seg_views: dict[str, np.ndarray]) -> dict[str, float]:
    return evaluate_segmentation(model_files()["pick"], "pick", seg_views)


def test_stow_segmenter_on_held_out_views(segmenter_metrics: dict[str, float]) -> None:
    m = segmenter_metrics
    assert m["miou"] >= 0.85, m  # the acceptance level
    assert m["instance_recall_50"] >= 0.75, m  # regression floor (report: 0.81 on 300 views)


def test_pick_model_on_held_out_views(pick_metrics: dict[str, float]) -> None:
    m = pick_metrics
    assert m["instance_recall_50"] >= 0.75, m  # regression floor (report: 0.81 on 300 views)
    assert m["status_accuracy"] >= 0.82, m  # regression floor (report: 0.88)


@pytest.mark.xfail(strict=True, reason="issue 13 open: instance recall and status accuracy below 0.9")
def test_acceptance_instance_recall_and_status_accuracy(segmenter_metrics: dict[str, float],
                                                        pick_metrics: dict[str, float]) -> None:
    assert segmenter_metrics["instance_recall_50"] >= 0.9 and pick_metrics["instance_recall_50"] >= 0.9
    assert pick_metrics["status_accuracy"] >= 0.9


def test_embedding_identifies_among_50_products_under_other_light() -> None:
    path = model_files()["embedding"]
    threshold = open_model(path, "embedding").metadata.match_threshold
    assert threshold is not None
    m = evaluate_embedding(path, _split(EMB_VIEWS, embeddings=True), threshold)
    assert m["products"] == 50.0, m
    assert m["top1"] >= 0.95, m
    assert m["false_accept_rate"] <= 0.05, m


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "wrong kind"])
def test_a_damaged_shipped_model_gives_the_contract_error(tmp_path: Path, damage: str) -> None:
    src = model_files()["pick"]
    bad = tmp_path / "pick.onnx"
    kind = "pick"
    if damage == "truncated":
        bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    elif damage == "corrupted":
        data = bytearray(src.read_bytes())
        data[:64] = bytes(range(64))
        bad.write_bytes(bytes(data))
    else:
        shutil.copy(model_files()["embedding"], bad)  # an embedding model where the pick model belongs
    with pytest.raises(ModelError) as err:
        open_model(bad, kind)
    assert str(bad) in str(err.value)
    if damage == "wrong kind":
        assert isinstance(err.value, ContractError) and "image" in str(err.value)
