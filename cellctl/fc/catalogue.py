"""The FC's product catalogue as files: each product's dimensions and reference photographs (docs/catalogue.md).

A real FC photographs every product at receiving; a cell with real devices identifies the ordered item by
matching those photographs (issue 13, point 5). `CatalogueDirectory(path)` reads a directory holding
`catalogue.json` and the images it names (PNG or JPEG, RGB; an optional mask image per view, the product's pixels
non-zero) and is `LearnedPerception`'s `ReferenceSource`. Opening it checks the whole manifest and that every file
it names exists, so a broken catalogue stops the run at start with the file's name; an image is decoded the first
time its product is ordered (a bad one then refuses that product's identification, naming the file).
`write_catalogue` writes one (`cellctl catalogue export` writes the simulated FC's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["MANIFEST", "CatalogueDirectory", "CatalogueFileError", "ProductEntry", "ReferenceView",
           "write_catalogue"]

MANIFEST = "catalogue.json"
FORMAT = "cellctl-catalogue"
VERSION = 1
MIN_SIDE_PX = 16
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

Mm = Annotated[float, Field(gt=0.0, le=2000.0)]


class CatalogueFileError(ValueError):
    """A catalogue directory, manifest or image that cannot be used (the message names the file)."""


class ReferenceView(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    image: str = Field(min_length=1, max_length=500)
    mask: str | None = Field(None, min_length=1, max_length=500)

    @field_validator("image", "mask")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is None:
            return value
        p = PurePosixPath(value)
        if p.is_absolute() or ".." in p.parts or "\\" in value or "\x00" in value:
            raise ValueError(f"{value!r}: a path inside the catalogue directory (relative, no '..')")
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{value!r}: not a PNG or JPEG file name ({', '.join(IMAGE_SUFFIXES)})")
        return value


class ProductEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    size_mm: tuple[Mm, Mm, Mm]  # width, height, depth
    views: tuple[ReferenceView, ...] = Field(min_length=1, max_length=32)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: str
    version: int
    products: dict[Annotated[str, Field(min_length=1, max_length=64)], ProductEntry]

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value != FORMAT:
            raise ValueError(f"format must be {FORMAT!r}, got {value!r}")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value != VERSION:
            raise ValueError(f"version {value} is not one this cellctl reads ({VERSION})")
        return value


def _read_image(path: Path) -> np.ndarray:
    import open3d as o3d  # open3d loads in seconds: only when an image is first needed

    if not path.is_file():
        raise CatalogueFileError(f"{path}: no such image file")
    img = np.asarray(o3d.io.read_image(path))
    if img.ndim < 2 or img.size == 0:
        raise CatalogueFileError(f"{path}: not a readable PNG or JPEG image")
    return img


class CatalogueDirectory:
    """The products of a catalogue directory: dimensions and reference views ((RGB, mask or None) per view)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not self.path.is_dir():
            raise CatalogueFileError(f"{self.path}: not a catalogue directory (no such directory)")
        try:
            text = manifest.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogueFileError(f"{manifest}: cannot read the catalogue manifest: {exc}") from None
        try:
            self.manifest = Manifest.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise CatalogueFileError(f"{manifest}: {where}: {first['msg']} ({exc.error_count()} error(s))") from None
        missing = [f"{pid}: {name}" for pid, entry in self.manifest.products.items() for v in entry.views
                   for name in (v.image, v.mask) if name is not None and not (self.path / name).is_file()]
        if missing:
            raise CatalogueFileError(f"{manifest}: {len(missing)} image file(s) missing, e.g. {missing[0]}")
        self._cache: dict[str, list[tuple[np.ndarray, np.ndarray | None]]] = {}

    @property
    def products(self) -> Mapping[str, ProductEntry]:
        return self.manifest.products

    def size_mm(self, product_id: str) -> tuple[float, float, float] | None:
        entry = self.manifest.products.get(product_id)
        return None if entry is None else entry.size_mm

    def references(self, product_id: str) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """The product's views, decoded once; [] for a product the catalogue does not hold. CatalogueFileError
        for an image that does not decode, is not RGB, or whose mask does not match it."""
        entry = self.manifest.products.get(product_id)
        if entry is None:
            return []
        got = self._cache.get(product_id)
        if got is None:
            got = [self._view(v) for v in entry.views]
            self._cache[product_id] = got
        return got

    def _view(self, view: ReferenceView) -> tuple[np.ndarray, np.ndarray | None]:
        path = self.path / view.image
        rgb = _read_image(path)
        if rgb.ndim == 3 and rgb.shape[2] == 4:
            rgb = rgb[..., :3]
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise CatalogueFileError(f"{path}: a reference must be 8-bit RGB, got {rgb.dtype} {list(rgb.shape)}")
        if min(rgb.shape[:2]) < MIN_SIDE_PX:
            raise CatalogueFileError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} px is too small "
                                     f"(at least {MIN_SIDE_PX} px a side)")
        if view.mask is None:
            return np.ascontiguousarray(rgb), None
        mpath = self.path / view.mask
        m = _read_image(mpath)
        m = m if m.ndim == 2 else m[..., 0]
        if m.shape != rgb.shape[:2]:
            raise CatalogueFileError(f"{mpath}: mask is {m.shape[1]}x{m.shape[0]} px, its image "
                                     f"{rgb.shape[1]}x{rgb.shape[0]}")
        mask = m > 0
        if not mask.any():
            raise CatalogueFileError(f"{mpath}: the mask marks no pixel of the product")
        return np.ascontiguousarray(rgb), mask


def write_catalogue(path: str | Path,
                    products: Mapping[str, tuple[Sequence[float], Sequence[tuple[np.ndarray, np.ndarray | None]]]],
                    ) -> Path:
    """Write `products` ({id: (size_mm, [(RGB uint8, mask or None), ...])}) as a catalogue directory: PNG images
    under `<id>/`, the manifest last (a directory without one is not a catalogue). Returns the manifest's path."""
    import open3d as o3d

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict[str, object]] = {}
    for pid, (size, views) in products.items():
        if not pid or "/" in pid or "\\" in pid or pid in (".", ".."):
            raise CatalogueFileError(f"product id {pid!r} cannot name a directory")
        (root / pid).mkdir(exist_ok=True)
        listed = []
        for i, (rgb, mask) in enumerate(views):
            image = f"{pid}/{i}.png"
            o3d.io.write_image(root / image, o3d.geometry.Image(np.ascontiguousarray(rgb, dtype=np.uint8).data))
            view: dict[str, str] = {"image": image}
            if mask is not None:
                view["mask"] = f"{pid}/{i}-mask.png"
                m = np.ascontiguousarray(np.where(mask, 255, 0).astype(np.uint8))
                o3d.io.write_image(root / view["mask"], o3d.geometry.Image(m.data))
            listed.append(view)
        entries[pid] = {"size_mm": [float(v) for v in size], "views": listed}
    doc = {"format": FORMAT, "version": VERSION, "products": entries}
    Manifest.model_validate(doc)  # what it writes, it can read
    manifest = root / MANIFEST
    tmp = manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(manifest)
    return manifest
