"""Per-frame lighting and the colour sensor: linear reflectance -> 8-bit sRGB.

`Lighting.sample(rng)` draws a frame's light: intensity 0.6-1.3, colour temperature 2800-7000 K (RGB gains from
a blackbody fit, half corrected by the camera's white balance, normalised to a mean of 1), a direction up to
35 degrees off the camera axis in x and in y (the light travels +z into the bin, from the EOAT's side) and an
ambient share of 0.2-0.45. `shade` is Lambert: radiance = reflectance x gains x intensity x (ambient + (1 - ambient) x
max(0, n . -direction)). `expose` adds sensor noise (read noise 0.004 plus shot noise 0.012 sqrt(radiance),
linear units; Gaussian draws from `noise.gaussian`), applies the sRGB transfer curve and rounds to uint8.
Reflectance and radiance images are planar, (3, H, W), for speed; the exposed image is (H, W, 3) as
`DepthFrame.color` wants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .noise import gaussian
from .raycast import NORMALS

READ_NOISE = 0.004
SHOT_NOISE = 0.012
WHITE_BALANCE = 0.5  # the fraction of the light's colour cast the camera's white balance removes


def kelvin_rgb(kelvin: float) -> np.ndarray:
    """Relative RGB of a blackbody at `kelvin` (Tanner Helland's fit), each in [0, 1]."""
    t = kelvin / 100.0
    r = 1.0 if t <= 66 else 1.292936186 * (t - 60) ** -0.1332047592
    g = 0.390081579 * math.log(t) - 0.631841444 if t <= 66 else 1.129890861 * (t - 60) ** -0.0755148492
    b = 1.0 if t >= 66 else (0.0 if t <= 19 else 0.543206789 * math.log(t - 10) - 1.196254089)
    return np.clip(np.array([r, g, b]), 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Lighting:
    intensity: float = 1.0
    kelvin: float = 5500.0
    direction: tuple[float, float, float] = (0.0, 0.0, 1.0)  # the way the light travels, camera frame
    ambient: float = 0.3

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Lighting:
        ax, ay = rng.uniform(-0.7, 0.7, 2)
        d = np.array([ax, ay, 1.0]) / math.sqrt(ax * ax + ay * ay + 1.0)
        return cls(float(rng.uniform(0.6, 1.3)), float(rng.uniform(2800.0, 7000.0)),
                   (float(d[0]), float(d[1]), float(d[2])), float(rng.uniform(0.2, 0.45)))

    def gains(self) -> np.ndarray:
        g = kelvin_rgb(self.kelvin) ** (1.0 - WHITE_BALANCE)
        return g / g.mean()

    def light(self, face: np.ndarray) -> np.ndarray:
        """The light's strength on faces `face` (raycast FACE_* codes; -1, nothing hit, is lit as a surface
        facing the camera): intensity x (ambient + (1 - ambient) x Lambert), float32 of face's shape."""
        d = np.asarray(self.direction, dtype=np.float64)
        d = d / np.linalg.norm(d)
        normals = np.concatenate([NORMALS, [[0.0, 0.0, -1.0]]])  # index -1: facing the camera
        lambert = np.clip(-(normals @ d), 0.0, 1.0)
        table = (self.intensity * (self.ambient + (1.0 - self.ambient) * lambert)).astype(np.float32)
        return np.take(table, face.astype(np.intp))

    def shade(self, reflectance: np.ndarray, face: np.ndarray) -> np.ndarray:
        """Linear radiance (3, ...) of surfaces of planar `reflectance` (3, ...) on faces `face` (...)."""
        return reflectance * (self.gains().astype(np.float32).reshape((3,) + (1,) * face.ndim) * self.light(face)[None])


_SRGB = np.linspace(0.0, 1.0, 4096)
_SRGB_LUT = np.rint(255.0 * np.where(_SRGB <= 0.0031308, 12.92 * _SRGB,
                                     1.055 * np.power(_SRGB, 1 / 2.4) - 0.055)).astype(np.uint8)


def expose(radiance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Planar linear radiance (3, H, W) -> uint8 sRGB (H, W, 3) with sensor noise (a 4096-entry transfer table)."""
    x = np.clip(radiance.astype(np.float32), 0.0, None)
    sigma = np.float32(READ_NOISE) + np.float32(SHOT_NOISE) * np.sqrt(x)
    x += gaussian(rng, x.shape) * sigma
    np.clip(x, 0.0, 1.0, out=x)
    x *= np.float32(4095)
    x += np.float32(0.5)
    return np.take(_SRGB_LUT, x.astype(np.int32).transpose(1, 2, 0))
