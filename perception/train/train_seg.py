"""Train the stow segmenter or the pick model (`--kind segmenter|pick`), export it, evaluate it on held-out seeds.

    python -m perception.train.train_seg --kind pick --seed 1 --views 3000 --iterations 3000 --out models/pick.onnx

Needs the `train` extra (PyTorch). Deterministic for a seed on one thread. Three architectures (`--arch`):

- `center` (the default, the shipped models; `CenterSegNet`): losses per mask-grid cell: CenterNet's focal loss on
  the centre heat map, L1 on the offsets to the instance centres (weight OFFSET_WEIGHT), BCE on the foreground,
  cross-entropy on the status of instance cells (pick) or on the classes (segmenter). After training, the centre
  threshold the export uses is chosen on validation views from the training range (`choose_center_threshold`).
  `center-wide`: the same with wider coarse stages and shared heads (`CenterSegNet(wide=True)`).
- `query` (`SegNet`): queries are matched to the true instances per image (Hungarian, on the object probability and
  the masks' dice), as in DETR / Mask2Former; cross-entropy on object / no object (no object weighted 0.1), BCE +
  dice on the matched masks, cross-entropy on the status of matched queries (pick), per-pixel cross-entropy on the
  classes (segmenter).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torch.nn import functional as F

from . import dataset
from .cli import training_parser
from .evaluate import evaluate_segmentation, status_agreement, write_report
from .models import CENTER_THRESHOLDS, CenterSegNet, SegNet, export, metadata

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


OFFSET_WEIGHT = 0.1  # the offsets' L1 (in grid cells) beside the heat map's focal loss (`--offset-weight`)
OFFSET_MEANS = ("cell", "instance")  # `--offset-mean`: the L1 averaged over all instance cells, or per instance first


def _heat_focal(logit: Tensor, target: Tensor) -> Tensor:
    """CenterNet's penalty-reduced focal loss: `target` is 1 at the centres, a Gaussian around them, else 0."""
    p = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    pos = target >= 1.0
    loss = torch.where(pos, (1 - p) ** 2 * torch.log(p), (1 - target) ** 4 * p ** 2 * torch.log(1 - p))
    return -loss.sum() / pos.sum().clamp(min=1)


def center_targets(masks: Tensor, objects: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One image's object masks (T, h, w) -> (heat target (h, w), offset target (2, h, w), foreground (h, w),
    owner index (h, w), -1 none). The centre of an instance is its centroid's grid cell; the Gaussian's sigma
    grows with the instance (a tenth of the square root of its area, at least one cell)."""
    m = masks[objects].float()
    h, w = masks.shape[1:]
    ys = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    area = m.sum((1, 2)).clamp(min=1)
    cy = torch.round((m * ys).sum((1, 2)) / area)
    cx = torch.round((m * xs).sum((1, 2)) / area)
    sigma = torch.clamp(0.1 * area.sqrt(), min=1.0)
    g = torch.exp(-((ys - cy.view(-1, 1, 1)) ** 2 + (xs - cx.view(-1, 1, 1)) ** 2) / (2 * sigma.view(-1, 1, 1) ** 2))
    heat = g.max(0).values if len(m) else torch.zeros(h, w)
    fg = m.sum(0) > 0
    owner = torch.where(fg, m.argmax(0), torch.full((h, w), -1, dtype=torch.long))
    safe = owner.clamp(min=0)
    offset = torch.stack([cy[safe] - ys[0], cx[safe] - xs[0]]) * fg
    return heat, offset, fg, owner


def offset_l1(pred: Tensor, target: Tensor, fg: Tensor, owner: Tensor, mean: str) -> Tensor:
    """One image's L1 between (2, h, w) offsets on the instance cells `fg`: the mean over the cells (`cell`), or
    (`instance`) each instance's mean, then their mean, so that a thin or small item weighs as much as a large one."""
    if mean not in OFFSET_MEANS:
        raise ValueError(f"offset mean is one of {', '.join(OFFSET_MEANS)}, not {mean!r}")
    err = (pred - target).abs().sum(0)[fg]
    if mean == "cell":
        return err.mean()
    own = owner[fg]
    n = int(own.max()) + 1
    sums = err.new_zeros(n).index_add(0, own, err)
    counts = torch.bincount(own, minlength=n).to(err.dtype)
    present = counts > 0
    return (sums[present] / counts[present]).mean()


def center_loss(heads: Mapping[str, Tensor], batch: Mapping[str, Tensor], kind: str,
                offset_weight: float = OFFSET_WEIGHT, offset_mean: str = "cell") -> Tensor:
    qcls, qstat, qmasks = batch["query_class"], batch["query_status"], batch["query_masks"]
    total = heads["heat"].new_zeros(())
    for i in range(len(qcls)):
        objects = torch.nonzero(qcls[i] == 0).flatten()
        heat, offset, fg, owner = center_targets(qmasks[i], objects)
        total = total + _heat_focal(heads["heat"][i], heat)
        total = total + F.binary_cross_entropy_with_logits(heads["fg"][i], fg.float())
        if fg.any():
            total = total + offset_weight * offset_l1(heads["offset"][i], offset, fg, owner, offset_mean)
            if kind == "pick":
                status = qstat[i, objects][owner[fg]]
                total = total + F.cross_entropy(heads["cls"][i][:, fg].T, status)
    total = total / len(qcls)
    if kind == "segmenter":
        total = total + F.cross_entropy(heads["cls"], batch["sem"].long())
    return total


def targets(data: Mapping[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """The arrays a model of `kind` trains on (the stow segmenter's instances are items only)."""
    qcls = data["query_class"]
    if kind == "segmenter":
        qcls = dataset.stow_query_class(qcls, data["query_status"])
    return {"image": data["image"], "sem": data["sem"], "query_class": qcls, "query_status": data["query_status"],
            "query_masks": data["query_masks"]}


ARCHS: dict[str, Callable[[str, int], nn.Module]] = {  # --arch: (kind, width) -> the network
    "center": lambda kind, width: CenterSegNet(kind, width=width),  # type: ignore[arg-type]
    "center-wide": lambda kind, width: CenterSegNet(kind, width=width, wide=True),  # type: ignore[arg-type]
    "query": lambda kind, width: SegNet(kind, width=width),  # type: ignore[arg-type]
}


def train(kind: str, data: Mapping[str, np.ndarray], *, seed: int, iterations: int, batch_size: int = 8,
          lr: float = 1e-3, width: int = 16, log_every: int = 100, arch: str = "center",
          offset_weight: float = OFFSET_WEIGHT, offset_mean: str = "cell") -> nn.Module:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = ARCHS[arch](kind, width)
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
        if isinstance(net, CenterSegNet):
            loss = center_loss(net.heads(batch["image"]), batch, kind, offset_weight, offset_mean)
        else:
            loss = seg_loss(net(batch["image"]), batch, kind)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log_every and (it % log_every == 0 or it == iterations - 1):
            print(f"{kind} it {it}/{iterations} loss {loss.item():.4f} ({time.monotonic() - t0:.0f} s)", flush=True)
    return net


AGREEMENT_VIEWS = 100  # held-out views for the pick model's status agreement beside the oracle's
AGREEMENT_NOTE = ("every visible item (>= 20 pixels) of these views; an item no segment covers at IoU 0.5 counts as "
                  "wrong for the model; the oracle is perception.eligibility.classify on the renderer's labels and "
                  "the same measured depth")
VALIDATION_VIEWS = 100  # train-range views after the training ones: the centre threshold is chosen on them


def choose_center_threshold(net: CenterSegNet, kind: str, out: Path, data: Mapping[str, np.ndarray]) -> float:
    """The CENTER_THRESHOLDS value with the best instance recall on `data` (set on `net`; ties: the higher)."""
    best = (-1.0, CENTER_THRESHOLDS[-1])
    for t in CENTER_THRESHOLDS:
        net.center_threshold = t
        export(net, kind, out, metadata(0, 0, {}))  # type: ignore[arg-type]
        recall = evaluate_segmentation(out, kind, data)["instance_recall_50"]
        print(f"centre threshold {t}: validation recall {recall:.3f}", flush=True)
        best = max(best, (recall, t))
    net.center_threshold = best[1]
    return best[1]


def main(argv: Sequence[str] | None = None) -> int:
    ap = training_parser(__doc__ or "", views=3000, views_help="training views", heldout=300,
                         heldout_help="held-out views for the report", iterations=3000, batch_size=8)
    ap.add_argument("--kind", choices=("segmenter", "pick"), required=True)
    ap.add_argument("--arch", choices=tuple(ARCHS), default="center")
    ap.add_argument("--offset-weight", type=float, default=OFFSET_WEIGHT, help="centre archs: the offsets' L1 weight")
    ap.add_argument("--offset-mean", choices=OFFSET_MEANS, default="cell",
                    help="centre archs: the offsets' L1 averaged over all instance cells, or per instance first")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.data_dir.mkdir(parents=True, exist_ok=True)
    train_data = dataset.cached_split(a.data_dir, "train", a.views, "segmentation")
    net = train(a.kind, train_data, seed=a.seed, iterations=a.iterations, batch_size=a.batch_size, lr=a.lr,
                width=a.width, arch=a.arch, offset_weight=a.offset_weight, offset_mean=a.offset_mean)
    meta = metadata(a.seed, a.views, {}, data_seed=f"train views {dataset.split_seeds('train', 1)[0]}+{a.views}")
    extra: dict[str, object] = {"iterations": a.iterations, "width": a.width, "arch": a.arch}
    if isinstance(net, CenterSegNet):
        extra.update(offset_weight=a.offset_weight, offset_mean=a.offset_mean)
        extra["center_threshold"] = choose_center_threshold(net, a.kind, a.out, dataset.cached_split(
            a.data_dir, "train", VALIDATION_VIEWS, "segmentation", start=a.views))
    export(net, a.kind, a.out, meta)
    heldout = dataset.cached_split(a.data_dir, "heldout", a.heldout, "segmentation")
    metrics = evaluate_segmentation(a.out, a.kind, heldout)
    export(net, a.kind, a.out, {**meta, "metrics": metadata(a.seed, a.views, metrics)["metrics"]})
    if a.kind == "pick":
        seeds = dataset.split_seeds("heldout", AGREEMENT_VIEWS)
        extra["status_agreement"] = {**status_agreement(a.out, seeds), "heldout_seeds": [seeds[0], seeds[-1]],
                                     "note": AGREEMENT_NOTE}
    report = write_report(a.out, metrics, kind=a.kind, seed=a.seed, data_size=a.views,
                          heldout_seeds=[int(s) for s in heldout["seed"]],
                          extra=extra)
    print(f"{a.out}: {metrics} (report {report})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
