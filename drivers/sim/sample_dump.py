"""Write a sample of the simulated EOAT camera to files, for looking at (no dependencies beyond numpy and zlib).

`dump_sample(directory, bin, rng=seed)` writes color.png (what the camera gives), depth.png (grey, near is
bright, no return is black), classes.png (the truth's classes: background black, wall blue, band yellow, item
grey shaded by id) and sample.npz (depth, colour and the truth's images).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..camera import Intrinsics
from .camera_view import render_training_view
from .world import Bin
from .world_render import CameraPose


def write_png(path: Path | str, image: np.ndarray) -> None:
    """uint8 (H, W) grey or (H, W, 3) RGB -> an 8-bit PNG file."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"need a uint8 (H, W) or (H, W, 3) image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    colour_type = 2 if img.ndim == 3 else 0
    raw = b"".join(b"\x00" + row.tobytes() for row in img.reshape(h, -1))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
                           + chunk(b"IEND", b""))


def dump_sample(directory: Path | str, bin: Bin, intrinsics: Intrinsics | None = None,
                pose: CameraPose | None = None, *, rng: np.random.Generator | int = 0) -> Path:
    """Render `bin` once and write the files listed in the module docstring into `directory`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    frame, truth = render_training_view(bin, intrinsics, pose, rng=rng)
    assert frame.color is not None
    write_png(out / "color.png", frame.color)
    d = frame.depth
    lo, hi = (float(np.nanmin(d)), float(np.nanmax(d))) if np.isfinite(d).any() else (0.0, 1.0)
    grey = np.where(np.isnan(d), 0.0, 255.0 - 215.0 * (d - lo) / max(hi - lo, 1e-6))
    write_png(out / "depth.png", np.nan_to_num(grey).astype(np.uint8))
    palette = np.array([[0, 0, 0], [60, 90, 200], [230, 200, 40], [160, 160, 160]], dtype=np.uint8)
    classes = palette[truth.cls].copy()
    shade = (60 + (truth.instance * 53) % 160).astype(np.uint8)
    classes[truth.instance > 0] = shade[truth.instance > 0, None]
    write_png(out / "classes.png", classes)
    np.savez_compressed(out / "sample.npz", depth=frame.depth, color=frame.color, cls=truth.cls,
                        instance=truth.instance, depth_truth=truth.depth_m, band_alpha=truth.band_alpha)
    return out
