"""Training and evaluation data for the learned models (docs/models.md, "Training"), generated from seeds.

numpy only (no training framework): the data set is reproducible from its seeds on any machine. One seed gives
one *view*: a pod from `drivers.sim.world.generate_pod`, one of its bins, a camera pose (standoff and offset drawn
about the cell's) and a lighting drawn per view, rendered by `drivers.sim.camera_view.render_training_view`, the
training-only renderer that returns the ground truth beside the frame. The inputs are made by the runners' own
pre-processing (`perception.learned.preprocess`), so training and inference see identical tensors.

Targets of a view, at the contract's mask grid (MASK_H x MASK_W, each cell the frame pixel holding its centre):

- `sem` uint8 [72, 96]: the renderer's class (0 background, 1 bin structure, 2 band, 3 item).
- Queries, QUERIES of them: `query_masks` bool [16, 72, 96], `query_class` int64 [16] (0 object, 1 no object:
  the contract's `pred_logits` order), `query_status` int64 [16] (`perception.eligibility.KINDS` index, -1 where
  there is no object). The objects are the visible items with at least MIN_CELLS cells, largest first, with their
  status from `ground_truth_eligibility` (free / below / blocked), then the band, if it shows, as one `not_item`
  segment (the pick model's "a segment that is not an item"). Unused queries are padding ("no object").
  The stow segmenter's instances are items only: `stow_query_class` turns the not_item query into padding.
- Embedding: a crop (`crop_tensor`) of every visible item with at least EMBED_MIN_PIXELS frame pixels, and the
  crops of its product's reference images from the simulated FC's `Catalogue` (another viewpoint and lighting);
  `embedding_pairs` draws (cell crop, reference, same product?) pairs with different products as negatives.

The train and held-out splits are disjoint seed ranges (`SEED_RANGES`). Shards are `.npz` files (`write_shard`,
`read_shard`) holding either part or both (`PARTS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from drivers.camera import DepthFrame, Intrinsics
from drivers.sim.camera_view import FrameTruth, render_training_view
from drivers.sim.catalogue import Catalogue, CatalogueError
from drivers.sim.lighting import Lighting
from drivers.sim.world import Bin, generate_pod, ground_truth_eligibility
from drivers.sim.world_render import BAND, CameraPose

from ..eligibility import KINDS
from ..learned.contracts import CROP, INPUT_H, INPUT_W, MASK_H, MASK_W, QUERIES
from ..learned.preprocess import crop_tensor, frame_tensor, resize_nearest

Split = Literal["train", "heldout"]
SEED_RANGES: dict[Split, tuple[int, int]] = {"train": (0, 1_000_000), "heldout": (1_000_000, 2_000_000)}
FRAME_W, FRAME_H = 320, 240  # the simulated EOAT camera's resolution
STANDOFF_MM = (280.0, 420.0)  # camera standoff range (the cell's default pose is 350 mm)
OFFSET_MM = (40.0, 30.0)  # +- x, y offset of the camera from the bin's centre
MIN_CELLS = 2  # an item needs this many mask-grid cells to be a query target (about 20 frame pixels)
EMBED_MIN_PIXELS = 150  # an item needs this many frame pixels for an embedding crop
REF_VIEWS = 3  # reference images per product
NOT_ITEM, NO_OBJECT, PAD_STATUS = KINDS.index("not_item"), 1, -1
Part = Literal["segmentation", "embedding"]
PARTS: dict[Part, tuple[str, ...]] = {
    "segmentation": ("image", "sem", "query_masks", "query_class", "query_status", "query_items"),
    "embedding": ("cell_crops", "cell_products", "ref_crops", "ref_products"),
}
ALL_PARTS: tuple[Part, ...] = ("segmentation", "embedding")
DATA_VERSION = 1  # bump on any change to what a seed generates (the training scripts' caches carry it)


class DatasetError(ValueError):
    """A bad split, seed range or shard."""


def split_seeds(split: Split, n: int, start: int = 0) -> list[int]:
    """`n` view seeds of `split`, the `start`-th onwards: the train and held-out ranges never overlap."""
    if split not in SEED_RANGES:
        raise DatasetError(f"unknown split {split!r}: expected one of {', '.join(SEED_RANGES)}")
    lo, hi = SEED_RANGES[split]
    if n < 0 or start < 0 or lo + start + n > hi:
        raise DatasetError(f"{split}: seeds {start}..{start + n} fall outside its range of {hi - lo}")
    return list(range(lo + start, lo + start + n))


@dataclass(frozen=True, slots=True, eq=False)
class View:
    """One view's model input and targets (see the module's docstring), plus its embedding crops."""

    seed: int
    image: np.ndarray  # float32 [4, INPUT_H, INPUT_W]
    sem: np.ndarray  # uint8 [MASK_H, MASK_W]
    query_masks: np.ndarray  # bool [QUERIES, MASK_H, MASK_W]
    query_class: np.ndarray  # int64 [QUERIES]: 0 object, 1 no object
    query_status: np.ndarray  # int64 [QUERIES]: KINDS index, -1 for padding
    query_items: np.ndarray  # int64 [QUERIES]: the world's item id of an item query, 0 for the band and padding
    cell_crops: np.ndarray  # float32 [N, 3, CROP, CROP]
    cell_products: tuple[str, ...]  # product id of each cell crop
    ref_crops: np.ndarray  # float32 [M, 3, CROP, CROP]
    ref_products: tuple[str, ...]


def _pose(rng: np.random.Generator) -> CameraPose:
    dx, dy = (float(rng.uniform(-m, m)) for m in OFFSET_MM)
    return CameraPose(float(rng.uniform(*STANDOFF_MM)), (dx, dy))


def scene(seed: int) -> tuple[Bin, DepthFrame, FrameTruth]:
    """The bin, frame and ground truth of view `seed`: a bin of a seeded pod, a drawn pose and lighting."""
    rng = np.random.default_rng([seed, 13])
    pod = generate_pod(rng, pod_id=f"pod{seed}")
    bins = [b for b in pod.bins if b.items] or pod.bins
    bin = bins[int(rng.integers(len(bins)))]
    frame, truth = render_training_view(bin, Intrinsics.from_fov(FRAME_W, FRAME_H), _pose(rng), rng=rng,
                                        lighting=Lighting.sample(rng))
    return bin, frame, truth


def make_view(seed: int, *, embeddings: bool = True) -> View:
    """The view of `seed` (deterministic: the same seed gives the same arrays)."""
    bin, frame, truth = scene(seed)
    assert frame.color is not None  # the sim camera always gives colour
    image = frame_tensor(frame.color, frame.depth)[0]
    sem = resize_nearest(truth.cls, MASK_H, MASK_W).astype(np.uint8)
    grid = resize_nearest(truth.instance, MASK_H, MASK_W)
    status = ground_truth_eligibility(bin)
    ids, counts = np.unique(grid[grid > 0], return_counts=True)
    order = sorted((int(c), int(i)) for i, c in zip(ids, counts, strict=True) if c >= MIN_CELLS)[::-1]
    band = sem == BAND
    n_items = QUERIES - 1 if band.sum() >= MIN_CELLS else QUERIES
    masks = np.zeros((QUERIES, MASK_H, MASK_W), dtype=bool)
    qcls = np.full(QUERIES, NO_OBJECT, dtype=np.int64)
    qstat = np.full(QUERIES, PAD_STATUS, dtype=np.int64)
    qitem = np.zeros(QUERIES, dtype=np.int64)
    q = 0
    for _, item_id in order[:n_items]:
        masks[q], qcls[q], qstat[q], qitem[q] = grid == item_id, 0, KINDS.index(status[item_id]), item_id
        q += 1
    if band.sum() >= MIN_CELLS:
        masks[q], qcls[q], qstat[q] = band, 0, NOT_ITEM
    cell, cell_p, ref, ref_p = _embedding_crops(seed, bin, frame.color, truth.instance) if embeddings else (
        [], [], [], [])
    return View(seed, image, sem, masks, qcls, qstat, qitem, _stack(cell), tuple(cell_p), _stack(ref), tuple(ref_p))


def _stack(crops: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack(crops).astype(np.float32) if crops else np.zeros((0, 3, CROP, CROP), dtype=np.float32)


def _embedding_crops(seed: int, bin: Bin, rgb: np.ndarray, instance: np.ndarray,
                     ) -> tuple[list[np.ndarray], list[str], list[np.ndarray], list[str]]:
    catalogue = Catalogue(seed, views=REF_VIEWS)
    cell: list[np.ndarray] = []
    cell_p: list[str] = []
    ref: list[np.ndarray] = []
    ref_p: list[str] = []
    for p in bin.items:
        mask = instance == p.item_id
        if int(mask.sum()) < EMBED_MIN_PIXELS:
            continue
        try:
            refs = catalogue.references(p.item.product_id, p.item.size_mm)
        except CatalogueError:
            continue  # too large for the booth: no references, so no pair
        cell.append(crop_tensor(rgb, mask))
        cell_p.append(p.item.product_id)
        for r in refs:
            ref.append(crop_tensor(r.color, r.mask))
            ref_p.append(r.product_id)
    return cell, cell_p, ref, ref_p


def stow_query_class(query_class: np.ndarray, query_status: np.ndarray) -> np.ndarray:
    """The stow segmenter's query targets: items only (the not_item segment becomes "no object")."""
    return np.where(query_status == NOT_ITEM, NO_OBJECT, query_class).astype(np.int64)


def embedding_pairs(cell_products: Sequence[str], ref_products: Sequence[str],
                    rng: np.random.Generator | int) -> np.ndarray:
    """int64 [K, 3] rows (cell crop index, reference index, 1 same product / 0 not): per cell crop, one reference
    of its product and one of another (when the set holds another product)."""
    g = np.random.default_rng(rng)
    refs = np.asarray(ref_products, dtype=object)
    rows: list[tuple[int, int, int]] = []
    for i, pid in enumerate(cell_products):
        same, other = np.flatnonzero(refs == pid), np.flatnonzero(refs != pid)
        if len(same):
            rows.append((i, int(g.choice(same)), 1))
        if len(other):
            rows.append((i, int(g.choice(other)), 0))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def write_shard(path: str | Path, views: Iterable[View], parts: Sequence[Part] = ALL_PARTS) -> Path:
    """Write views to one compressed .npz shard: `seed` and the arrays of `parts` (segmentation: stacked per view;
    embedding: crops concatenated over the views, product ids as strings)."""
    vs = list(views)
    if not vs or not parts:
        raise DatasetError("a shard needs at least one view and one part")
    arrays: dict[str, np.ndarray] = {"seed": np.array([v.seed for v in vs], dtype=np.int64)}
    if "segmentation" in parts:
        arrays.update({k: np.stack([getattr(v, k) for v in vs]) for k in PARTS["segmentation"]})
    if "embedding" in parts:
        arrays["cell_crops"] = np.concatenate([v.cell_crops for v in vs])
        arrays["ref_crops"] = np.concatenate([v.ref_crops for v in vs])
        arrays["cell_products"] = np.array([p for v in vs for p in v.cell_products], dtype=str).reshape(-1)
        arrays["ref_products"] = np.array([p for v in vs for p in v.ref_products], dtype=str).reshape(-1)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(p, **arrays)  # type: ignore[arg-type]
    return p


def read_shard(path: str | Path) -> dict[str, np.ndarray]:
    """A shard's arrays (see `write_shard`), checked for the contract's shapes."""
    with np.load(Path(path), allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    parts = [part for part, keys in PARTS.items() if keys[0] in out]
    missing = [k for part in parts for k in PARTS[part] if k not in out]
    if "seed" not in out or not parts or missing:
        raise DatasetError(f"{path}: not a data shard, missing {', '.join(missing) or 'seed or every part'}")
    n = len(out["seed"])
    if "segmentation" in parts and (out["image"].shape != (n, 4, INPUT_H, INPUT_W)
                                    or out["query_masks"].shape != (n, QUERIES, MASK_H, MASK_W)):
        raise DatasetError(f"{path}: image {out['image'].shape} / masks {out['query_masks'].shape} off the contract")
    if "embedding" in parts and (out["cell_crops"].shape[1:] != (3, CROP, CROP)
                                 or len(out["cell_crops"]) != len(out["cell_products"])
                                 or len(out["ref_crops"]) != len(out["ref_products"])):
        raise DatasetError(f"{path}: crops {out['cell_crops'].shape} off the contract or their product ids")
    return out


def build_split(out_dir: str | Path, split: Split, n: int, *, shard_size: int = 256, start: int = 0,
                parts: Sequence[Part] = ALL_PARTS) -> list[Path]:
    """Generate `n` views of `split` into shards `{split}-00000.npz`, ... under `out_dir` (only `parts`)."""
    seeds = split_seeds(split, n, start)
    paths: list[Path] = []
    for k in range(0, len(seeds), shard_size):
        views = [make_view(s, embeddings="embedding" in parts) for s in seeds[k:k + shard_size]]
        paths.append(write_shard(Path(out_dir) / f"{split}-{k // shard_size:05d}.npz", views, parts))
    return paths


CACHE_PREFIX: dict[Part, str] = {"segmentation": "v", "embedding": "emb-v"}


def cached_split(data_dir: Path, split: Split, n: int, part: Part, start: int = 0) -> dict[str, np.ndarray]:
    """`n` views of `split` from the `start`-th (only `part`), generated once into `data_dir` and read back
    afterwards; the file names carry DATA_VERSION, so a changed data set is generated again."""
    stem = f"{CACHE_PREFIX[part]}{DATA_VERSION}-{split}-{n}" + (f"+{start}" if start else "")
    shards = sorted(data_dir.glob(f"{stem}-*.npz"))
    if not shards:
        tmp = data_dir / stem
        for p in build_split(tmp, split, n, start=start, parts=(part,)):
            p.rename(data_dir / f"{stem}-{p.name}")
        tmp.rmdir()
        shards = sorted(data_dir.glob(f"{stem}-*.npz"))
    return load_split(shards)


def load_split(paths: Sequence[str | Path]) -> dict[str, np.ndarray]:
    """Shards concatenated along their first axis."""
    shards = [read_shard(p) for p in paths]
    if not shards:
        raise DatasetError("no shards")
    return {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}
