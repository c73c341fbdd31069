"""Shared types and input validation for the perception package.

Conventions: camera frame x right, y down, z forward (metres); depth images are float32
metres with NaN = no return; pixel centres at integer coordinates (OpenCV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class PerceptionError(ValueError):
    """Malformed input to a perception function (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels: x = (u - cx) / fx * z, y = (v - cy) / fy * z."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise PerceptionError(f"intrinsics {name} must be a positive integer, got {value!r}")
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise PerceptionError(f"intrinsics {name} must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise PerceptionError(f"intrinsics {name} must be finite, got {value!r}")
        if self.fx <= 0 or self.fy <= 0:
            raise PerceptionError(f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")

    @classmethod
    def from_any(cls, k: object) -> CameraIntrinsics:
        """Accept a CameraIntrinsics, any object with the six attributes, or a 6-sequence."""
        if isinstance(k, CameraIntrinsics):
            return k
        names = ("width", "height", "fx", "fy", "cx", "cy")
        if all(hasattr(k, n) for n in names):
            return cls(*(getattr(k, n) for n in names))
        try:
            arr = np.asarray(k, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise PerceptionError(f"cannot interpret {k!r} as camera intrinsics") from exc
        if arr.shape != (6,):
            raise PerceptionError(f"intrinsics need 6 values (width, height, fx, fy, cx, cy), got {arr.size}")
        if not np.all(np.isfinite(arr)):
            raise PerceptionError(f"intrinsics {arr.tolist()} must be finite")
        if arr[0] != round(arr[0]) or arr[1] != round(arr[1]):
            raise PerceptionError(f"intrinsics width/height must be integers, got {arr[0]}, {arr[1]}")
        return cls(int(arr[0]), int(arr[1]), *(float(v) for v in arr[2:]))


def check_depth(depth: object, k: CameraIntrinsics | None = None, *, name: str = "depth") -> np.ndarray:
    """A float32 (H, W) depth image: finite values >= 0 or NaN; matches `k` if given."""
    if not isinstance(depth, np.ndarray):
        raise PerceptionError(f"{name} must be a numpy array, got {type(depth).__name__}")
    if depth.dtype != np.float32:
        raise PerceptionError(f"{name} must be float32 metres, got dtype {depth.dtype}")
    if depth.ndim != 2:
        raise PerceptionError(f"{name} must be a 2-D (H, W) image, got shape {depth.shape}")
    if k is not None and depth.shape != (k.height, k.width):
        raise PerceptionError(f"{name} shape {depth.shape} does not match intrinsics {k.height}x{k.width}")
    if depth.size and np.isinf(depth).any():
        raise PerceptionError(f"{name} contains infinite values (use NaN for no return)")
    with np.errstate(invalid="ignore"):
        if depth.size and (depth < 0).any():
            raise PerceptionError(f"{name} contains negative values")
    return depth


def check_points(points: object, *, name: str = "points") -> np.ndarray:
    """An (N, 3) array of finite coordinates as float64 (N may be 0)."""
    if not isinstance(points, np.ndarray):
        raise PerceptionError(f"{name} must be a numpy array, got {type(points).__name__}")
    if points.ndim != 2 or points.shape[1] != 3:
        raise PerceptionError(f"{name} must have shape (N, 3), got {points.shape}")
    if not (np.issubdtype(points.dtype, np.floating) or np.issubdtype(points.dtype, np.integer)):
        raise PerceptionError(f"{name} must be a real numeric array, got dtype {points.dtype}")
    pts = points.astype(np.float64, copy=False)
    if pts.size and not np.isfinite(pts).all():
        raise PerceptionError(f"{name} contain NaN or infinite coordinates")
    return pts


def check_positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    """A finite positive (or non-negative) real scalar."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise PerceptionError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise PerceptionError(f"{name} must be finite and {'>=' if allow_zero else '>'} 0, got {value!r}")
    return v


def check_vec3(value: object, name: str) -> np.ndarray:
    """A finite 3-vector as float64."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PerceptionError(f"{name} must be a 3-vector of numbers, got {value!r}") from exc
    if arr.shape != (3,) or not np.isfinite(arr).all():
        raise PerceptionError(f"{name} must be a finite 3-vector, got {value!r}")
    return arr


def frozen(arr: np.ndarray) -> np.ndarray:
    """Mark an array read-only so it can live inside a frozen dataclass."""
    arr.setflags(write=False)
    return arr
