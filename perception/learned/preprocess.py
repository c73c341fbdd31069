"""Model inputs from camera frames (docs/models.md, "Inputs"), and resampling of model outputs to the frame.

A frame is an RGB image (uint8, H x W x 3) and its depth image (float32 metres, NaN = no return) of the same
size. The segmenters take a float32 NCHW tensor [1, 4, 144, 192]: R, G, B normalised with the ImageNet mean and
std, then depth in metres (no return -> 0, clipped to DEPTH_MAX_M), the frame resized to 192 x 144 (RGB
bilinear, depth nearest). The embedding model takes [N, 3, 64, 64] normalised RGB crops.
"""

from __future__ import annotations

import numpy as np

from ..common import PerceptionError, check_depth
from .contracts import CROP, INPUT_H, INPUT_W

RGB_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
RGB_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
DEPTH_MAX_M = 2.0
CROP_MARGIN = 0.1  # a crop's box is the mask's bounding box grown by this fraction of its side on every side


def check_rgb(rgb: object, shape: tuple[int, ...] | None = None, *, name: str = "rgb") -> np.ndarray:
    """A uint8 (H, W, 3) colour image, of `shape` (H, W) if given."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
        raise PerceptionError(f"{name} must be a uint8 (H, W, 3) image, got {got}")
    if shape is not None and rgb.shape[:2] != shape:
        raise PerceptionError(f"{name} size {rgb.shape[:2]} does not match the depth image's {shape}")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise PerceptionError(f"{name} is empty: shape {rgb.shape}")
    return rgb


def normalise_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W): (x / 255 - mean) / std per channel."""
    x = rgb.astype(np.float32) * np.float32(1 / 255)
    return np.ascontiguousarray(((x - RGB_MEAN) / RGB_STD).transpose(2, 0, 1))


def _axis(n_out: int, n_in: int, lo: float = 0.0, hi: float | None = None) -> tuple[np.ndarray, ...]:
    """Bilinear taps for `n_out` samples over source span [lo, hi) (pixel edges): i0, i1, w1, inside."""
    hi = float(n_in) if hi is None else hi
    src = lo + (np.arange(n_out, dtype=np.float64) + 0.5) * ((hi - lo) / n_out) - 0.5
    inside = (src >= -0.5) & (src <= n_in - 0.5)
    src = np.clip(src, 0.0, n_in - 1.0)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32), inside


def resize_bilinear(img: np.ndarray, height: int, width: int,
                    box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """(..., H, W) float32 -> (..., height, width), half-pixel centres (align_corners=False).

    `box` = (y0, x0, y1, x1) in source pixel edges selects the region sampled (default: the whole image);
    samples falling outside the source are 0.
    """
    h, w = img.shape[-2:]
    y0, x0, y1, x1 = box if box is not None else (0.0, 0.0, float(h), float(w))
    return resample(img, _axis(height, h, y0, y1), _axis(width, w, x0, x1))


def taps(n_out: int, n_in: int) -> tuple[np.ndarray, ...]:
    """The bilinear taps resizing an axis of `n_in` to `n_out` (slice them to resample a window of the output)."""
    return _axis(n_out, n_in)


def resample(img: np.ndarray, ty: tuple[np.ndarray, ...], tx: tuple[np.ndarray, ...]) -> np.ndarray:
    """(..., H, W) sampled at the taps `ty` (rows) and `tx` (columns): columns first, on the smaller image."""
    c0, c1, wx, inx = tx
    r0, r1, wy, iny = ty
    left = img[..., c0]
    cols = left + (img[..., c1] - left) * wx
    top = cols[..., r0, :]
    out = top + (cols[..., r1, :] - top) * wy[:, None]
    if not (iny.all() and inx.all()):
        out = out * (iny[:, None] & inx[None, :])
    return out.astype(np.float32, copy=False)


def resize_nearest(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) -> (height, width), each sample from the source pixel holding its centre."""
    h, w = img.shape
    rows = np.minimum(((np.arange(height) + 0.5) * (h / height)).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * (w / width)).astype(np.intp), w - 1)
    return img[rows[:, None], cols[None, :]]


def depth_channel(depth: np.ndarray) -> np.ndarray:
    """Depth in metres with no return (NaN, 0) as 0, clipped to DEPTH_MAX_M."""
    return np.clip(np.nan_to_num(depth, nan=0.0, posinf=0.0), 0.0, DEPTH_MAX_M).astype(np.float32)


def frame_tensor(rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The segmenters' input [1, 4, INPUT_H, INPUT_W] from one frame."""
    d = check_depth(depth)
    c = check_rgb(rgb, d.shape)
    out = np.empty((1, 4, INPUT_H, INPUT_W), dtype=np.float32)
    out[0, :3] = resize_bilinear(normalise_rgb(c), INPUT_H, INPUT_W)
    out[0, 3] = resize_nearest(depth_channel(d), INPUT_H, INPUT_W)
    return out


def check_mask(mask: object, shape: tuple[int, ...], name: str = "mask") -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != shape:
        got = f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}"
        raise PerceptionError(f"{name} must be a bool array of shape {shape}, got {got}")
    if not mask.any():
        raise PerceptionError(f"{name} selects no pixel")
    return mask


def crop_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """The square crop around a mask (pixel edges y0, x0, y1, x1): its bounding box grown by CROP_MARGIN."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = float(rows[0]), float(rows[-1] + 1), float(cols[0]), float(cols[-1] + 1)
    side = max(y1 - y0, x1 - x0) * (1 + 2 * CROP_MARGIN)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    return cy - side / 2, cx - side / 2, cy + side / 2, cx + side / 2


def crop_tensor(rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """One embedding input [3, CROP, CROP]: the mask's square crop, pixels off the mask (and off the image) 0.

    No mask: the whole image, squared about its centre (a reference image of the product alone).
    """
    c = check_rgb(rgb)
    h, w = c.shape[:2]
    if mask is None:
        side = float(max(h, w))
        return resize_bilinear(normalise_rgb(c), CROP, CROP, ((h - side) / 2, (w - side) / 2, (h + side) / 2,
                                                             (w + side) / 2))
    m = check_mask(mask, (h, w))
    y0, x0, y1, x1 = crop_box(m)
    # Only the window the samples can reach: the box within the image, one pixel round it (off the mask: 0).
    wy0, wx0 = max(0, int(np.floor(y0)) - 1), max(0, int(np.floor(x0)) - 1)
    wy1, wx1 = min(h, int(np.ceil(y1)) + 1), min(w, int(np.ceil(x1)) + 1)
    x = normalise_rgb(c[wy0:wy1, wx0:wx1]) * m[wy0:wy1, wx0:wx1]
    return resize_bilinear(x, CROP, CROP, (y0 - wy0, x0 - wx0, y1 - wy0, x1 - wx0))
