"""A simulated EOAT depth camera that renders a scene of boxes by ray casting."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import numpy as np

from ..camera import DepthFrame, FrameError, Intrinsics, PeriodicFrameSource


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in the camera frame (x right, y down, z forward), metres."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    label: int = 1

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(self.center, dtype=np.float64)
        h = np.asarray(self.size, dtype=np.float64) / 2
        if c.shape != (3,) or h.shape != (3,) or not np.all(np.isfinite(c)) or not np.all(np.isfinite(h)):
            raise FrameError(f"box {self} needs finite 3-vectors for center and size")
        if np.any(h <= 0):
            raise FrameError(f"box {self} has a non-positive size")
        return c - h, c + h


def render(boxes: list[Box], k: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Depth (float32 m, NaN = no hit) and instance labels (int32, 0 = background)."""
    u = (np.arange(k.width, dtype=np.float64) - k.cx) / k.fx  # pixel centres at integers (OpenCV)
    v = (np.arange(k.height, dtype=np.float64) - k.cy) / k.fy
    depth = np.full((k.height, k.width), np.inf)
    labels = np.zeros((k.height, k.width), dtype=np.int32)
    for box in boxes:
        lo, hi = box.bounds()
        if hi[2] <= 0:
            continue  # entirely behind the camera
        rows, cols = _footprint(lo, hi, k)
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        # Rays are (x, y, 1) * t: slab test per axis, t is then the depth z.
        dx = u[cols][None, :]
        dy = v[rows][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            tx1, tx2 = lo[0] / dx, hi[0] / dx
            ty1, ty2 = lo[1] / dy, hi[1] / dy
        tnear = np.maximum(np.maximum(np.minimum(tx1, tx2), np.minimum(ty1, ty2)), lo[2])
        tfar = np.minimum(np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2)), hi[2])
        # Rays parallel to a slab (dx == 0) hit only if the origin lies inside it.
        tnear = np.where(np.isnan(tnear), lo[2], tnear)
        hit = (tnear <= tfar) & (tfar > 0)
        t = np.where(hit, np.maximum(tnear, 0.0), np.inf)
        view = depth[rows, cols]
        closer = t < view
        view[closer] = t[closer]
        labels[rows, cols][closer] = box.label
    depth[~np.isfinite(depth)] = np.nan
    return depth.astype(np.float32), labels


def _footprint(lo: np.ndarray, hi: np.ndarray, k: Intrinsics) -> tuple[slice, slice]:
    """Pixel rows/cols the box can cover (the whole image if it straddles z = 0)."""
    if lo[2] <= 1e-6:
        return slice(0, k.height), slice(0, k.width)
    xs = np.array([lo[0], hi[0]])
    ys = np.array([lo[1], hi[1]])
    zs = np.array([lo[2], hi[2]])
    us = (xs[:, None] / zs[None, :]) * k.fx + k.cx
    vs = (ys[:, None] / zs[None, :]) * k.fy + k.cy
    c0 = max(int(np.floor(us.min())) - 1, 0)
    c1 = min(int(np.ceil(us.max())) + 1, k.width)
    r0 = max(int(np.floor(vs.min())) - 1, 0)
    r1 = min(int(np.ceil(vs.max())) + 1, k.height)
    return slice(r0, r1), slice(c0, c1)


class SimDepthCamera(PeriodicFrameSource):
    """Renders `scene` at `rate_hz`, with seeded Gaussian noise and dropout.

    `threaded=True` renders in a worker thread (real time); keep it False under the
    virtual clock so a run stays deterministic. `stall(seconds)` stops frames.
    """

    def __init__(
        self,
        scene: list[Box] | None = None,
        intrinsics: Intrinsics | None = None,
        *,
        rate_hz: float = 10.0,
        noise_m: float = 0.0,
        dropout: float = 0.0,
        seed: int = 0,
        threaded: bool = True,
    ) -> None:
        super().__init__("sim_camera", rate_hz)
        if not (0.0 <= dropout < 1.0) or not (noise_m >= 0.0):
            raise ValueError(f"need 0 <= dropout < 1 and noise_m >= 0, got {dropout}, {noise_m}")
        self.intrinsics = intrinsics or Intrinsics.from_fov()
        self.scene: list[Box] = list(scene or [])
        self.noise_m = noise_m
        self.dropout = dropout
        self.threaded = threaded
        self.last_labels: np.ndarray | None = None
        self._rng = np.random.default_rng(seed)
        self._stalled_until = -np.inf

    def stall(self, seconds: float) -> None:
        """Fault injection: no frames for `seconds`."""
        self._stalled_until = anyio.current_time() + seconds

    def render_now(self) -> tuple[np.ndarray, np.ndarray]:
        depth, labels = render(self.scene, self.intrinsics)
        if self.noise_m > 0:
            depth += self._rng.normal(0.0, self.noise_m, depth.shape).astype(np.float32)
            np.maximum(depth, 0.0, out=depth)
        if self.dropout > 0:
            depth[self._rng.random(depth.shape) < self.dropout] = np.nan
        return depth, labels

    async def capture(self) -> DepthFrame | None:
        now = anyio.current_time()
        if now < self._stalled_until:
            return None
        if self.threaded:
            depth, labels = await anyio.to_thread.run_sync(self.render_now)
        else:
            depth, labels = self.render_now()
        self.last_labels = labels
        return DepthFrame(self.next_seq(), now, self.intrinsics, depth)
