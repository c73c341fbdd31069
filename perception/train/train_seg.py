"""Train the stow segmenter or the pick model (`--kind segmenter|pick`), export it, evaluate it on held-out seeds.

    python -m perception.train.train_seg --kind pick --seed 1 --views 3000 --iterations 3000 --out models/pick.onnx

Needs the `train` extra (PyTorch). Queries are matched to the true instances per image (Hungarian, on the object
probability and the masks' dice), as in DETR / Mask2Former; losses: cross-entropy on object / no object (no object
weighted 0.1), BCE + dice on the matched masks, cross-entropy on the status of matched queries (pick), per-pixel
cross-entropy on the classes (segmenter). Deterministic for a seed on one thread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torch.nn import functional as F

from . import dataset
from .cli import training_parser
from .evaluate import evaluate_segmentation, write_report
from .models import SegNet, export, metadata

NO_OBJECT_WEIGHT = 0.1


def _dice(pred: Tensor, target: Tensor) -> Tensor:
    """[P, n] probabilities x [T, n] 0/1 -> [P, T] dice losses."""
    inter = pred @ target.T
    return 1 - (2 * inter + 1) / (pred.sum(1)[:, None] + target.sum(1)[None, :] + 1)


def match(logits: Tensor, masks: Tensor, target_masks: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """One image: (Q, 2) logits, (Q, h, w) mask logits, (T, h, w) true masks -> (query indices, target indices)."""
    with torch.no_grad():
        prob = logits.softmax(-1)[:, 0]
        cost = -prob[:, None] + _dice(masks.flatten(1).sigmoid(), target_masks.flatten(1).float())
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return rows, cols


def seg_loss(outputs: Sequence[Tensor], batch: Mapping[str, Tensor], kind: str) -> Tensor:
    if kind == "segmenter":
        sem_logits, logits, masks = outputs
        status = None
    else:
        logits, masks, status = outputs
    qcls, qstat, qmasks = batch["query_class"], batch["query_status"], batch["query_masks"]
    total = logits.new_zeros(())
    cls_target = torch.ones(logits.shape[:2], dtype=torch.long)
    for i in range(logits.shape[0]):
        objects = torch.nonzero(qcls[i] == 0).flatten()
        if objects.numel() == 0:
            continue
        rows, cols = match(logits[i], masks[i], qmasks[i, objects])
        q, t = torch.as_tensor(rows), objects[torch.as_tensor(cols)]
        cls_target[i, q] = 0
        pm, tm = masks[i, q].flatten(1), qmasks[i, t].flatten(1).float()
        total = total + F.binary_cross_entropy_with_logits(pm, tm) + torch.diagonal(_dice(pm.sigmoid(), tm)).mean()
        if status is not None:
            total = total + F.cross_entropy(status[i, q], qstat[i, t])
    weight = torch.tensor([1.0, NO_OBJECT_WEIGHT])
    total = total / logits.shape[0] + F.cross_entropy(logits.flatten(0, 1), cls_target.flatten(), weight=weight)
    if kind == "segmenter":
        total = total + F.cross_entropy(sem_logits, batch["sem"].long())
    return total


def targets(data: Mapping[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """The arrays a model of `kind` trains on (the stow segmenter's instances are items only)."""
    qcls = data["query_class"]
    if kind == "segmenter":
        qcls = dataset.stow_query_class(qcls, data["query_status"])
    return {"image": data["image"], "sem": data["sem"], "query_class": qcls, "query_status": data["query_status"],
            "query_masks": data["query_masks"]}


def train(kind: str, data: Mapping[str, np.ndarray], *, seed: int, iterations: int, batch_size: int = 8,
          lr: float = 1e-3, width: int = 16, log_every: int = 100) -> SegNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SegNet(kind, width=width)  # type: ignore[arg-type]
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(iterations, 1))
    arrays = targets(data, kind)
    n = len(arrays["image"])
    net.train()
    t0 = time.monotonic()
    for it in range(iterations):
        idx = rng.choice(n, size=min(batch_size, n), replace=False)
        batch = {k: torch.from_numpy(np.ascontiguousarray(v[idx])) for k, v in arrays.items()}
        flip = bool(rng.random() < 0.5)  # mirror augmentation: the bins and the classes are symmetric left-right
        if flip:
            batch = {k: (v.flip(-1) if v.ndim >= 3 else v) for k, v in batch.items()}
        loss = seg_loss(net(batch["image"]), batch, kind)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log_every and (it % log_every == 0 or it == iterations - 1):
            print(f"{kind} it {it}/{iterations} loss {loss.item():.4f} ({time.monotonic() - t0:.0f} s)", flush=True)
    return net


def main(argv: Sequence[str] | None = None) -> int:
    ap = training_parser(__doc__ or "", views=3000, views_help="training views", heldout=300,
                         heldout_help="held-out views for the report", iterations=3000, batch_size=8)
    ap.add_argument("--kind", choices=("segmenter", "pick"), required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.data_dir.mkdir(parents=True, exist_ok=True)
    train_data = dataset.cached_split(a.data_dir, "train", a.views, "segmentation")
    net = train(a.kind, train_data, seed=a.seed, iterations=a.iterations, batch_size=a.batch_size, lr=a.lr,
                width=a.width)
    meta = metadata(a.seed, a.views, {}, data_seed=f"train views {dataset.split_seeds('train', 1)[0]}+{a.views}")
    export(net, a.kind, a.out, meta)
    heldout = dataset.cached_split(a.data_dir, "heldout", a.heldout, "segmentation")
    metrics = evaluate_segmentation(a.out, a.kind, heldout)
    export(net, a.kind, a.out, {**meta, "metrics": metadata(a.seed, a.views, metrics)["metrics"]})
    report = write_report(a.out, metrics, kind=a.kind, seed=a.seed, data_size=a.views,
                          heldout_seeds=[int(s) for s in heldout["seed"]],
                          extra={"iterations": a.iterations, "width": a.width})
    print(f"{a.out}: {metrics} (report {report})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
