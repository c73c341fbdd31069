"""Change detection between successive depth frames, robust to depth noise.

Noise model: per-frame depth noise sigma(z) = noise_k * z^2 (structured-light / stereo
sensors; noise_k ~ 1-3 mm/m^2). The difference of two frames then has
sigma_d = noise_k * sqrt(z0^4 + z1^4); a pixel has *changed* when
|z1 - z0| > max(min_delta, n_sigma * sigma_d). Pixels without a return (NaN or 0) in
either frame are ignored (neither changed nor counted as valid). `despeckle` removes isolated
flags with a 3x3 majority vote on the change mask (a median filter of the boolean mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .common import PerceptionError, check_depth, check_positive, frozen


@dataclass(frozen=True, slots=True, eq=False)
class ChangeResult:
    fraction: float  # changed / valid, 0.0 when no pixel is valid in both frames
    mask: np.ndarray  # (H, W) bool, True where the depth changed
    n_changed: int
    n_valid: int  # pixels with a return in both frames


def depth_change(
    previous: np.ndarray,
    current: np.ndarray,
    *,
    noise_k: float = 0.0025,
    n_sigma: float = 4.0,
    min_delta: float = 0.005,
    despeckle: bool = False,
) -> ChangeResult:
    """Fraction of valid pixels whose depth moved more than the noise allows, and the mask."""
    d0 = check_depth(previous, name="previous")
    d1 = check_depth(current, name="current")
    if d0.shape != d1.shape:
        raise PerceptionError(f"frame shapes differ: previous {d0.shape}, current {d1.shape}")
    k = np.float32(check_positive(noise_k, "noise_k", allow_zero=True))
    ns = np.float32(check_positive(n_sigma, "n_sigma", allow_zero=True))
    md = np.float32(check_positive(min_delta, "min_delta", allow_zero=True))
    with np.errstate(invalid="ignore"):
        valid = (d0 > 0) & (d1 > 0)  # NaN compares False
        a = d0 * d0
        a *= a
        b = d1 * d1
        b *= b
        a += b
        np.sqrt(a, out=a)
        a *= k * ns  # threshold from the noise model
        np.maximum(a, md, out=a)
        diff = np.abs(d1 - d0)
        changed = diff > a  # NaN compares False, so invalid pixels never change
    if despeckle:
        counts = ndimage.correlate(changed.view(np.uint8), np.ones((3, 3), dtype=np.uint8), mode="constant")
        changed = (counts >= 5) & valid
    n_valid = int(np.count_nonzero(valid))
    n_changed = int(np.count_nonzero(changed))
    return ChangeResult(n_changed / n_valid if n_valid else 0.0, frozen(changed), n_changed, n_valid)
