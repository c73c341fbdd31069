"""Input checks shared by the planning modules; every failure is a `PlanningError`."""

from __future__ import annotations

import math

import numpy as np


class PlanningError(ValueError):
    """An invalid planning request (bad shapes, dtypes, units, NaN, empty inputs)."""


def real(name: str, value: object, *, allow_zero: bool = False, upper: float | None = None) -> float:
    """A finite real number > 0 (>= 0 with `allow_zero`), at most `upper` if given."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise PlanningError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < 0.0 or (v == 0.0 and not allow_zero):
        raise PlanningError(f"{name} must be finite and {'>=' if allow_zero else '>'} 0, got {value!r}")
    if upper is not None and v > upper:
        raise PlanningError(f"{name} must be <= {upper}, got {value!r}")
    return v


def vec3(name: str, value: object) -> np.ndarray:
    """A finite 3-vector as float64."""
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PlanningError(f"{name} must be a 3-vector, got {value!r}") from exc
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise PlanningError(f"{name} must be a finite 3-vector, got {value!r}")
    return v
