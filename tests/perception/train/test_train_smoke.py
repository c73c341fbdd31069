"""A few training iterations of each model on a tiny data set, exported, contract-checked and run (needs the
`train` extra; skipped without PyTorch). Untrained: the metrics are computed, never judged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from perception.learned.contracts import EMBED_DIM, MASK_H, MASK_W, QUERIES  # noqa: E402
from perception.learned.embedding import Embedder  # noqa: E402
from perception.learned.pick_model import PickModel  # noqa: E402
from perception.learned.segmenter import StowSegmenter  # noqa: E402
from perception.learned.session import open_model  # noqa: E402
from perception.train import dataset, train_embedding, train_seg  # noqa: E402
from perception.train.evaluate import evaluate_embedding, evaluate_segmentation, write_report  # noqa: E402
from perception.train.models import export, metadata  # noqa: E402

SEEDS = (0, 2, 3)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("data") / "train-00000.npz"
    return dataset.load_split([dataset.write_shard(path, [dataset.make_view(s) for s in SEEDS])])


@pytest.mark.parametrize("arch", ["center", "center-wide", "query"])
@pytest.mark.parametrize("kind", ["segmenter", "pick"])
def test_segmentation_trains_exports_and_fits_its_contract(kind: str, arch: str, data: dict[str, np.ndarray],
                                                           tmp_path: Path) -> None:
    net = train_seg.train(kind, data, seed=0, iterations=2, batch_size=2, width=8, log_every=0, arch=arch)
    path = export(net, kind, tmp_path / f"{kind}.onnx", metadata(0, len(SEEDS), {}))
    metrics = evaluate_segmentation(path, kind, data)
    assert set(metrics) == ({"miou", "instance_recall_50"} if kind == "segmenter"
                            else {"status_accuracy", "instance_recall_50"})
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    path = export(net, kind, path, metadata(7, len(SEEDS), metrics))
    model = open_model(path, kind)  # the contract check, with the probe run
    assert model.metadata.training_seed == 7 and model.metadata.data_size == len(SEEDS)
    out = model.run({"image": data["image"][:3]})
    assert out["pred_masks"].shape == (3, QUERIES, MASK_H, MASK_W)
    rgb = np.zeros((240, 320, 3), np.uint8)
    depth = np.full((240, 320), 0.4, np.float32)
    runner = StowSegmenter(model) if kind == "segmenter" else PickModel(model)
    assert runner.segment(rgb, depth).instance.shape == (240, 320)
    report = write_report(path, metrics, kind=kind, seed=7, data_size=len(SEEDS), heldout_seeds=list(SEEDS))
    assert json.loads(report.read_text())["metrics"] == metrics


def test_embedding_trains_exports_and_fits_its_contract(data: dict[str, np.ndarray], tmp_path: Path) -> None:
    net = train_embedding.train(data, seed=0, iterations=2, batch_size=8, width=8, log_every=0)
    threshold = train_embedding.threshold_on(net, data)
    assert -1.0 < threshold <= 1.0
    path = export(net, "embedding", tmp_path / "embedding.onnx",
                  metadata(0, len(data["cell_crops"]), {}, match_threshold=f"{threshold:.6f}"))
    metrics = evaluate_embedding(path, data, threshold)
    assert {"top1", "false_accept_rate"} <= set(metrics)
    model = open_model(path, "embedding")
    assert model.metadata.match_threshold == pytest.approx(threshold, abs=1e-5)
    vectors = Embedder(model).embed(data["cell_crops"][:5])
    assert vectors.shape == (5, EMBED_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_training_is_deterministic_by_seed(data: dict[str, np.ndarray]) -> None:
    a = train_embedding.train(data, seed=3, iterations=2, batch_size=8, width=8, log_every=0)
    b = train_embedding.train(data, seed=3, iterations=2, batch_size=8, width=8, log_every=0)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


def test_centre_targets_put_a_peak_on_each_centroid_and_point_the_offsets_at_it() -> None:
    masks = torch.zeros((3, MASK_H, MASK_W), dtype=torch.bool)
    masks[0, 10:20, 10:30] = True  # centroid (14.5, 19.5) -> cell (14, 20) after rounding half to even
    masks[1, 40:60, 50:70] = True  # centroid (49.5, 59.5) -> (50, 60)
    heat, offset, fg, owner = train_seg.center_targets(masks, torch.tensor([0, 1]))  # query 2 is padding
    assert heat[14, 20] == 1.0 and heat[50, 60] == 1.0 and int((heat == 1.0).sum()) == 2
    assert fg.sum() == 200 + 400 and owner[15, 15] == 0 and owner[45, 55] == 1 and owner[0, 0] == -1
    assert offset[:, 10, 10].tolist() == [4.0, 10.0] and offset[:, 59, 69].tolist() == [-9.0, -9.0]
    assert offset[:, 0, 0].tolist() == [0.0, 0.0]


def test_offset_l1_per_instance_weighs_a_small_item_as_much_as_a_large_one() -> None:
    masks = torch.zeros((2, MASK_H, MASK_W), dtype=torch.bool)
    masks[0, 10:20, 10:30] = True  # 200 cells
    masks[1, 40:42, 50:52] = True  # 4 cells
    _, target, fg, owner = train_seg.center_targets(masks, torch.tensor([0, 1]))
    pred = target.clone()
    pred[:, 40:42, 50:52] += 1.0  # only the small item's votes are off, by (1, 1): L1 2 per cell
    assert train_seg.offset_l1(pred, target, fg, owner, "cell").item() == pytest.approx(2 * 4 / 204)
    assert train_seg.offset_l1(pred, target, fg, owner, "instance").item() == pytest.approx((0 + 2) / 2)
