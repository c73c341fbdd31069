"""A structured-light (active stereo) depth sensor's artefacts, applied to an ideal rendered depth image.

`StructuredLight.apply(z, cos_incidence, ir_albedo, k, rng)` turns the renderer's exact z (m, inf/NaN = no
surface) into what such a sensor reports: float32 metres, NaN = no return. In order:

1. Range: outside [min_range_m, max_range_m] there is no return.
2. Projector shadow: the IR projector sits `baseline_m` to the right (+x) of the depth camera. A point is lit
   only if no nearer surface lies on the projector's ray to it; in projector coordinates a point at column u
   and depth z lands at u - fx * baseline / z, so a pixel is shadowed when some pixel to its right in the same
   row lands at or left of it while being nearer. This is the band of missing depth left of every foreground
   edge, fx * baseline * (1/z_near - 1/z_far) pixels wide (about 12 px for an item at 0.35 m before a wall at
   0.7 m with the defaults at 640 px).
3. Depth edges: the matcher's window straddles a discontinuity and would give "flying pixels" between the two
   surfaces; the sensor (like the SDK's edge filters) removes every pixel within `edge_px` of a jump between
   4-neighbours larger than `edge_jump_m + edge_jump_rel * z`.
4. Steep surfaces: the pattern is smeared over a surface seen at a grazing angle. With theta the angle between
   the ray and the surface normal, a return is missing with probability (theta - steep_start_deg) /
   (steep_end_deg - steep_start_deg), clipped to [0, 1] (none missing below 65 degrees, all above 85).
5. Dark surfaces: the reflected pattern's strength is ir_albedo * cos(theta) * (ref_range_m / z)^2; below
   `dark_signal_hi` a return goes missing with probability rising linearly to 1 at `dark_signal_lo`. With the
   defaults a surface facing the camera at 0.35 m returns nothing at IR albedo 0.015 or less and everything
   from 0.04; the bin's fabric (0.35) still returns at 1 m.
6. Speckle: `dropout` of the remaining pixels are missing at random.
7. Noise: Gaussian, sigma(z) = sigma_floor_m + z^2 * subpixel / (fx * baseline_m): the stereo/structured-light
   law (disparity error `subpixel` px -> depth error growing with the square of the range). Defaults are a
   short-range D405-like sensor: 18 mm baseline, 0.08 px subpixel, so at fx = 457 px (640 px, 70 degrees)
   sigma is about 1.4 mm at 0.35 m and 6.4 mm at 0.8 m.
8. Quantisation: values are rounded to multiples of `depth_unit_m` (0.1 mm, the D405's default unit), as the
   z16 stream carries them.

Every random draw comes from the Generator passed in: the same seed gives the same frame. (Gaussian draws use
65536 quantiles of the normal distribution, `noise.gaussian`: tails end at 4.3 sigma.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import Intrinsics
from .noise import gaussian


@dataclass(frozen=True, slots=True)
class StructuredLight:
    """Parameters of the depth sensor model (see the module docstring for what each does)."""

    baseline_m: float = 0.018
    subpixel: float = 0.08
    sigma_floor_m: float = 0.0002
    min_range_m: float = 0.07
    max_range_m: float = 1.5
    edge_jump_m: float = 0.008
    edge_jump_rel: float = 0.02
    edge_px: int = 1
    steep_start_deg: float = 65.0
    steep_end_deg: float = 85.0
    ref_range_m: float = 0.35
    dark_signal_lo: float = 0.015
    dark_signal_hi: float = 0.04
    dropout: float = 0.002
    depth_unit_m: float = 0.0001
    shadows: bool = True

    def __post_init__(self) -> None:
        if not (self.baseline_m > 0 and self.subpixel >= 0 and self.sigma_floor_m >= 0 and self.depth_unit_m > 0):
            raise ValueError(f"need baseline > 0, subpixel >= 0, sigma floor >= 0, depth unit > 0: {self}")
        if not (0 <= self.min_range_m < self.max_range_m and 0 <= self.dropout < 1 and self.edge_px >= 0):
            raise ValueError(f"need 0 <= min range < max range, 0 <= dropout < 1, edge_px >= 0: {self}")
        if not (self.steep_start_deg < self.steep_end_deg and 0 <= self.dark_signal_lo < self.dark_signal_hi):
            raise ValueError(f"need steep start < steep end and dark lo < dark hi: {self}")

    def sigma_m(self, z: np.ndarray | float, fx: float) -> np.ndarray:
        """The noise's standard deviation (m) at range z for a camera of focal length fx (px)."""
        return self.sigma_floor_m + np.square(z) * (self.subpixel / (fx * self.baseline_m))

    def apply(self, z: np.ndarray, cos_incidence: np.ndarray, ir_albedo: np.ndarray, k: Intrinsics,
              rng: np.random.Generator) -> np.ndarray:
        """Ideal z (H, W; inf or NaN = nothing) -> measured depth, float32 m, NaN = no return."""
        z = np.asarray(z, dtype=np.float32)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(z) & (z >= self.min_range_m) & (z <= self.max_range_m)
        if self.shadows:
            valid &= ~self.shadowed(z, k)
        valid &= ~self.edges(z)
        idx = np.flatnonzero(valid)
        zv = z.reshape(-1)[idx]
        cos = np.clip(np.asarray(cos_incidence, dtype=np.float32).reshape(-1)[idx], 0.0, 1.0)
        theta = np.degrees(np.arccos(cos))
        span = np.float32(self.steep_end_deg - self.steep_start_deg)
        keep = np.clip((np.float32(self.steep_end_deg) - theta) / span, 0.0, 1.0)
        signal = np.asarray(ir_albedo, dtype=np.float32).reshape(-1)[idx] * cos * np.square(
            np.float32(self.ref_range_m) / zv)
        dark_span = np.float32(self.dark_signal_hi - self.dark_signal_lo)
        keep *= np.clip((signal - np.float32(self.dark_signal_lo)) / dark_span, 0.0, 1.0)
        keep *= np.float32(1.0 - self.dropout)
        kept = rng.random(idx.size, dtype=np.float32) < keep
        idx, zv = idx[kept], zv[kept].astype(np.float64)
        measured = zv + gaussian(rng, (idx.size,)) * self.sigma_m(zv, k.fx)
        out = np.full(z.size, np.nan, dtype=np.float32)
        out[idx] = np.maximum(np.rint(measured / self.depth_unit_m), 1.0) * self.depth_unit_m
        return out.reshape(z.shape)

    def shadowed(self, z: np.ndarray, k: Intrinsics) -> np.ndarray:
        """Pixels the projector (at +x baseline) cannot light: a nearer surface to their right covers them."""
        z = np.asarray(z, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            surface = np.isfinite(z) & (z > 0)
            proj = np.arange(z.shape[1], dtype=np.float32)[None, :] - np.float32(k.fx * self.baseline_m) / z
        proj[~surface] = np.inf
        # Smallest projector column among the pixels strictly to the right of each pixel.
        right_min = np.full(z.shape, np.inf, dtype=np.float32)
        np.minimum.accumulate(proj[:, :0:-1], axis=1, out=right_min[:, -2::-1])
        return surface & (right_min < proj - np.float32(0.5))

    def edges(self, z: np.ndarray) -> np.ndarray:
        """Pixels within `edge_px` of a depth jump between 4-neighbours (a surface next to nothing counts)."""
        zz = np.asarray(z, dtype=np.float32).copy()
        zz[~np.isfinite(zz)] = np.inf
        jump = np.zeros(zz.shape, dtype=bool)
        step, rel = np.float32(self.edge_jump_m), np.float32(self.edge_jump_rel)
        for a, b, lo, hi in ((zz[:, 1:], zz[:, :-1], jump[:, 1:], jump[:, :-1]),
                             (zz[1:], zz[:-1], jump[1:], jump[:-1])):
            with np.errstate(invalid="ignore"):
                near = np.minimum(a, b)
                # inf - finite and inf - inf compare False: a jump, unless neither side is a surface.
                j = ~(np.abs(a - b) <= step + rel * near) & (near < np.inf)
            lo |= j
            hi |= j
        for _ in range(max(self.edge_px - 1, 0)):
            grown = jump.copy()
            grown[1:] |= jump[:-1]
            grown[:-1] |= jump[1:]
            grown[:, 1:] |= jump[:, :-1]
            grown[:, :-1] |= jump[:, 1:]
            jump = grown
        return jump
