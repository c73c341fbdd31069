"""The contracts of the learned models (docs/models.md): their tensors, metadata, and the check of a file.

A contract is checked against what onnxruntime reports of a loaded session (input and output names, element
types, shapes with symbolic dimensions) and against the file's ONNX metadata_props; `probe` then runs the model
once on a fixed input and checks what comes out. Each problem is one line naming the tensor (or metadata key),
what the contract expects and what the file has.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from ..common import PerceptionError
from ..eligibility import KINDS

Kind = Literal["segmenter", "pick", "embedding"]
MODEL_KINDS: tuple[Kind, ...] = ("segmenter", "pick", "embedding")

# Input sizes (pixels), shared by the two segmenters; masks and class maps come at half that resolution.
INPUT_H, INPUT_W = 144, 192
MASK_H, MASK_W = 72, 96
QUERIES = 16
CROP = 64
EMBED_DIM = 128
# Per-pixel classes of the stow segmenter, in channel order (the renderer's class numbers, drivers.sim.world_render).
STOW_CLASSES = ("background", "bin_structure", "band", "item")
# The pick model's status head, in channel order (perception.eligibility.KINDS).
STATUS_CLASSES = KINDS

BATCH = "batch"  # the batch axis in a TensorSpec's dims
META = "cellctl."  # prefix of the metadata keys the contract reads
REQUIRED_META = ("contract", "contract_version", "training_seed", "data_size", "metrics")
REQUIRED_BY_KIND: dict[str, tuple[str, ...]] = {"embedding": ("match_threshold",)}


class ModelError(PerceptionError):
    """A model file cannot be used: missing, unreadable, not ONNX, or refused by onnxruntime."""


class ContractError(ModelError):
    """A loadable model that does not fit its contract; `problems` has one line per mismatch."""

    def __init__(self, source: str, contract: Contract, problems: Sequence[str]) -> None:
        self.source, self.contract, self.problems = source, contract, tuple(problems)
        super().__init__(f"{source}: does not fit the {contract.kind} contract v{contract.version}: "
                         + "; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One tensor: its name, element type (numpy name) and dims (ints, or BATCH for the batch axis)."""

    name: str
    dims: tuple[int | str, ...]
    dtype: str = "float32"

    def text(self) -> str:
        return f"{self.dtype} [{', '.join(str(d) for d in self.dims)}]"


@dataclass(frozen=True, slots=True)
class Contract:
    kind: Kind
    version: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # "dynamic": the batch axis must be symbolic (crops are batched); "dynamic_or_1": symbolic or fixed at 1.
    batch: Literal["dynamic", "dynamic_or_1"] = "dynamic_or_1"

    def output(self, name: str) -> TensorSpec:
        return next(t for t in self.outputs if t.name == name)


_IMAGE = TensorSpec("image", (BATCH, 4, INPUT_H, INPUT_W))
CONTRACTS: dict[Kind, Contract] = {
    "segmenter": Contract("segmenter", 1, (_IMAGE,), (
        TensorSpec("sem_logits", (BATCH, len(STOW_CLASSES), MASK_H, MASK_W)),
        TensorSpec("pred_logits", (BATCH, QUERIES, 2)),
        TensorSpec("pred_masks", (BATCH, QUERIES, MASK_H, MASK_W)),
    )),
    "pick": Contract("pick", 1, (_IMAGE,), (
        TensorSpec("pred_logits", (BATCH, QUERIES, 2)),
        TensorSpec("pred_masks", (BATCH, QUERIES, MASK_H, MASK_W)),
        TensorSpec("pred_status", (BATCH, QUERIES, len(STATUS_CLASSES))),
    )),
    "embedding": Contract("embedding", 1, (TensorSpec("crop", (BATCH, 3, CROP, CROP)),), (
        TensorSpec("embedding", (BATCH, EMBED_DIM)),
    ), batch="dynamic"),
}

# onnxruntime's type strings -> numpy names (the ones a contract may meet; others are shown as onnxruntime says).
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16", "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
    "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool",
}


class NodeArgLike(Protocol):
    """What onnxruntime's NodeArg gives (name, type string, shape of ints, strings and Nones)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def shape(self) -> Sequence[int | str | None] | None: ...


def contract(kind: str) -> Contract:
    if kind not in CONTRACTS:
        raise ModelError(f"unknown model kind {kind!r}: expected one of {', '.join(MODEL_KINDS)}")
    return CONTRACTS[kind]  # type: ignore[index]


def _found(arg: NodeArgLike) -> str:
    dtype = _ORT_TYPES.get(arg.type, arg.type)
    if arg.shape is None:
        return f"{dtype} of unknown rank"
    dims = ", ".join("?" if d is None else (f"'{d}'" if isinstance(d, str) else str(d)) for d in arg.shape)
    return f"{dtype} [{dims}]"


def _dims_fit(spec: TensorSpec, shape: Sequence[int | str | None] | None, batch: str) -> bool:
    if shape is None or len(shape) != len(spec.dims):
        return False
    for want, got in zip(spec.dims, shape, strict=True):
        if want == BATCH:
            symbolic = got is None or isinstance(got, str)
            if not (symbolic or (batch == "dynamic_or_1" and got == 1)):
                return False
        elif isinstance(got, str) or got != want:
            return False
    return True


def check_io(inputs: Sequence[NodeArgLike], outputs: Sequence[NodeArgLike], c: Contract) -> list[str]:
    """The mismatches between a session's inputs and outputs and the contract's (extra outputs are allowed)."""
    problems: list[str] = []
    batch_note = "symbolic" if c.batch == "dynamic" else "symbolic or 1"
    for role, specs, args in (("input", c.inputs, inputs), ("output", c.outputs, outputs)):
        by_name = {a.name: a for a in args}
        for spec in specs:
            arg = by_name.get(spec.name)
            expected = f"expected {spec.text()} ({BATCH}: {batch_note})"
            if arg is None:
                names = ", ".join(repr(a.name) for a in args) or "none"
                problems.append(f"{role} '{spec.name}': {expected}, found no such {role} ({role}s: {names})")
            elif _ORT_TYPES.get(arg.type) != spec.dtype or not _dims_fit(spec, arg.shape, c.batch):
                problems.append(f"{role} '{spec.name}': {expected}, found {_found(arg)}")
    extra = [a.name for a in inputs if a.name not in {s.name for s in c.inputs}]
    if extra:
        problems.append(f"inputs {extra}: not in the contract (the runner feeds only "
                        f"{[s.name for s in c.inputs]})")
    return problems


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """What a model file says of itself (docs/models.md, "Metadata")."""

    contract: str
    contract_version: int
    training_seed: int
    data_size: int
    metrics: dict[str, float]
    score_threshold: float | None = None  # segmenters: keep a query whose object probability reaches this
    match_threshold: float | None = None  # embedding: accept a match whose cosine similarity reaches this
    other: dict[str, str] = field(default_factory=dict)  # every other metadata_props entry, as found


def _int_meta(meta: Mapping[str, str], key: str, problems: list[str]) -> int:
    text = meta.get(META + key, "")
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        problems.append(f"metadata '{META}{key}': expected an integer >= 0, found {text!r}")
    return value


def _unit_meta(meta: Mapping[str, str], key: str, low: float, problems: list[str]) -> float | None:
    text = meta.get(META + key)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (low < value <= 1.0):
        problems.append(f"metadata '{META}{key}': expected a number in ({low:g}, 1], found {text!r}")
        return None
    return value


def _metrics(text: str | None, problems: list[str]) -> dict[str, float]:
    key = f"metadata '{META}metrics'"
    try:
        value: Any = json.loads(text or "")
    except ValueError:
        value = None
    ok = isinstance(value, dict) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value.values())
    if not ok:
        problems.append(f"{key}: expected a JSON object of finite numbers, found {text!r}")
        return {}
    return {str(k): float(v) for k, v in value.items()}


def check_metadata(meta: Mapping[str, str], c: Contract) -> tuple[ModelMetadata, list[str]]:
    """The file's metadata as read, and its problems against the contract (missing keys, wrong kind or version)."""
    missing = [META + k for k in (*REQUIRED_META, *REQUIRED_BY_KIND.get(c.kind, ())) if META + k not in meta]
    if missing:
        return ModelMetadata("", 0, -1, -1, {}), [f"metadata {k!r}: missing" for k in missing]
    problems: list[str] = []
    kind = meta[META + "contract"]
    if kind != c.kind:
        problems.append(f"metadata '{META}contract': expected {c.kind!r}, found {kind!r}")
    version_text = meta[META + "contract_version"]
    if version_text != str(c.version):
        problems.append(f"metadata '{META}contract_version': expected '{c.version}', found {version_text!r}")
    seed = _int_meta(meta, "training_seed", problems)
    size = _int_meta(meta, "data_size", problems)
    metrics = _metrics(meta.get(META + "metrics"), problems)
    score = _unit_meta(meta, "score_threshold", 0.0, problems)
    match = _unit_meta(meta, "match_threshold", -1.0, problems)
    known = {META + k for k in (*REQUIRED_META, "score_threshold", "match_threshold")}
    other = {k: v for k, v in meta.items() if k not in known}
    version = int(version_text) if version_text.isdigit() else 0
    return ModelMetadata(kind, version, seed, size, metrics, score, match, other), problems


def probe_input(spec: TensorSpec, batch: int) -> np.ndarray:
    """A fixed pseudo-random input (roughly a normalised image) of `batch` samples."""
    dims = [batch if d == BATCH else int(d) for d in spec.dims]
    return np.random.default_rng(0).standard_normal(dims).astype(spec.dtype)


def check_outputs(values: Mapping[str, np.ndarray], c: Contract, batch: int) -> list[str]:
    """The problems of the outputs of one run on `batch` samples: shapes, types, finiteness, unit embeddings."""
    problems: list[str] = []
    for spec in c.outputs:
        v = values[spec.name]
        want = tuple(batch if d == BATCH else d for d in spec.dims)
        where = f"output '{spec.name}' (batch of {batch})"
        if not isinstance(v, np.ndarray) or v.dtype != np.dtype(spec.dtype) or v.shape != want:
            found = f"{getattr(v, 'dtype', type(v).__name__)} {list(getattr(v, 'shape', ()))}"
            problems.append(f"{where}: expected {spec.dtype} {list(want)}, found {found} when run")
        elif not np.isfinite(v).all():
            problems.append(f"{where}: expected finite values, found NaN or infinity when run")
        elif c.kind == "embedding":
            norms = np.linalg.norm(v.astype(np.float64), axis=1)
            if not np.allclose(norms, 1.0, atol=1e-3):
                problems.append(f"{where}: expected L2-normalised rows, found norms {np.round(norms, 4).tolist()}")
    return problems
