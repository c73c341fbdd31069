"""Train the product embedding contrastively, choose its match threshold, export it, evaluate it on held-out seeds.

    python -m perception.train.train_embedding --seed 1 --views 3000 --iterations 3000 --out models/embedding.onnx

Needs the `train` extra (PyTorch). A batch holds distinct products: for each, one crop of it from a cell view and
one of its catalogue references; the loss is InfoNCE both ways (each cell crop against every reference of the
batch, its own product's the positive, the others' the negatives), temperature TAU. The match threshold is the
lowest cosine with a false-accept rate of at most TARGET_FAR on the training products; the held-out report gives
top-1 among 50 products and the false-accept rate at that threshold.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from . import dataset
from .cli import training_parser
from .evaluate import choose_threshold, evaluate_embedding, product_scores, write_report
from .models import EmbedNet, export, metadata

TAU = 0.07
TARGET_FAR = 0.01


def _groups(products: np.ndarray) -> tuple[list[str], np.ndarray]:
    names = list(dict.fromkeys(str(p) for p in products))
    index = {p: g for g, p in enumerate(names)}
    return names, np.array([index[str(p)] for p in products], dtype=np.int64)


def info_nce(cells: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
    """Row i of `cells` and of `refs` are the same product, every other row another."""
    logits = cells @ refs.T / TAU
    target = torch.arange(len(cells))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def train(data: Mapping[str, np.ndarray], *, seed: int, iterations: int, batch_size: int = 64, lr: float = 1e-3,
          width: int = 16, log_every: int = 100) -> EmbedNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    names, cell_g = _groups(np.concatenate([data["cell_products"], data["ref_products"]]))
    cell_g, ref_g = cell_g[:len(data["cell_products"])], cell_g[len(data["cell_products"]):]
    by_cell = [np.flatnonzero(cell_g == g) for g in range(len(names))]
    by_ref = [np.flatnonzero(ref_g == g) for g in range(len(names))]
    usable = np.array([g for g in range(len(names)) if len(by_cell[g]) and len(by_ref[g])])
    if len(usable) < 2:
        raise ValueError("the embedding needs crops and references of at least two products")
    net = EmbedNet(width)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(iterations, 1))
    net.train()
    t0 = time.monotonic()
    for it in range(iterations):
        groups = rng.choice(usable, size=min(batch_size, len(usable)), replace=False)
        ci = [int(rng.choice(by_cell[g])) for g in groups]
        ri = [int(rng.choice(by_ref[g])) for g in groups]
        cells, refs = torch.from_numpy(data["cell_crops"][ci]), torch.from_numpy(data["ref_crops"][ri])
        if rng.random() < 0.5:
            cells = cells.flip(-1)
        loss = info_nce(net(cells), net(refs))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log_every and (it % log_every == 0 or it == iterations - 1):
            print(f"embedding it {it}/{iterations} loss {loss.item():.4f} ({time.monotonic() - t0:.0f} s)", flush=True)
    return net


def threshold_on(net: EmbedNet, data: Mapping[str, np.ndarray], n_products: int = 200) -> float:
    """The match threshold at TARGET_FAR, measured on (up to) `n_products` of the training products."""
    names, cell_g = _groups(data["cell_products"])
    names = names[:n_products]
    first = [int(np.flatnonzero(cell_g == g)[0]) for g in range(len(names))]
    index = {p: g for g, p in enumerate(names)}
    rows = [i for i, p in enumerate(data["ref_products"]) if str(p) in index]
    net.eval()
    with torch.no_grad():
        cells = net(torch.from_numpy(data["cell_crops"][first])).numpy()
        refs = net(torch.from_numpy(data["ref_crops"][rows])).numpy()
    scores = product_scores(cells, refs, np.array([index[str(data["ref_products"][i])] for i in rows]), len(names))
    own = np.zeros_like(scores, dtype=bool)
    own[np.arange(len(names)), np.arange(len(names))] = True
    return choose_threshold(scores, own, TARGET_FAR)


def main(argv: Sequence[str] | None = None) -> int:
    ap = training_parser(__doc__ or "", views=3000, views_help="training views (their items give the crops)",
                         heldout=100, heldout_help="held-out views (at least 50 products)", iterations=3000,
                         batch_size=64)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.data_dir.mkdir(parents=True, exist_ok=True)
    data = dataset.cached_split(a.data_dir, "train", a.views, "embedding")
    net = train(data, seed=a.seed, iterations=a.iterations, batch_size=a.batch_size, lr=a.lr, width=a.width)
    threshold = threshold_on(net, data)
    size = len(data["cell_crops"])
    meta = metadata(a.seed, size, {}, match_threshold=f"{threshold:.6f}")
    export(net, "embedding", a.out, meta)
    heldout = dataset.cached_split(a.data_dir, "heldout", a.heldout, "embedding")
    metrics = evaluate_embedding(a.out, heldout, threshold)
    export(net, "embedding", a.out, {**meta, "metrics": metadata(a.seed, size, metrics)["metrics"]})
    report = write_report(a.out, metrics, kind="embedding", seed=a.seed, data_size=size,
                          heldout_seeds=[int(s) for s in heldout["seed"]],
                          extra={"iterations": a.iterations, "width": a.width, "match_threshold": threshold,
                                 "views": a.views})
    print(f"{a.out}: {metrics} (report {report})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
