"""EOAT depth camera: frames, the `DepthFrameSource` interface, and a 10 Hz producer.

A source publishes frames on a `Topic` at its rate; consumers subscribe with the
`newest` policy (a slow consumer gets the latest frame, never a backlog). Depth is
float32 metres, NaN where the sensor has no return.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import numpy as np
from anyio.abc import TaskStatus

from .health import Incidents
from .streams import Subscription, Topic

MAX_RANGE_M = 20.0


class FrameError(ValueError):
    """A depth frame or its intrinsics are malformed."""


class CameraError(Exception):
    """A camera cannot be opened or streamed: no such device, a stream it does not offer, an SDK failure.

    The message names the camera and what it lacks (e.g. the streams it does offer); the SDK's own error, if
    any, is its `__cause__`.
    """


@dataclass(frozen=True, slots=True)
class Intrinsics:
    """Pinhole intrinsics in pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        if not (isinstance(self.width, int) and isinstance(self.height, int)) or self.width < 1 or self.height < 1:
            raise FrameError(f"image size must be positive integers, got {self.width}x{self.height}")
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise FrameError(f"intrinsic {name} must be a finite number, got {value!r}")
        if self.fx <= 0 or self.fy <= 0:
            raise FrameError(f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")
        if not (0 <= self.cx <= self.width and 0 <= self.cy <= self.height):
            size = f"{self.width}x{self.height}"
            raise FrameError(f"principal point ({self.cx}, {self.cy}) lies outside the {size} image")

    @classmethod
    def from_fov(cls, width: int = 640, height: int = 480, hfov_deg: float = 70.0) -> Intrinsics:
        fx = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
        return cls(width, height, fx, fx, width / 2, height / 2)

    def as_array(self) -> np.ndarray:
        return np.array([self.width, self.height, self.fx, self.fy, self.cx, self.cy], dtype=np.float64)

    @classmethod
    def from_array(cls, values: np.ndarray) -> Intrinsics:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.shape != (6,):
            raise FrameError(f"intrinsics need 6 values (width, height, fx, fy, cx, cy), got {arr.size}")
        if not np.all(np.isfinite(arr)) or arr[0] != round(arr[0]) or arr[1] != round(arr[1]):
            raise FrameError(f"intrinsics {arr.tolist()} must be finite with integer width and height")
        return cls(int(arr[0]), int(arr[1]), *(float(v) for v in arr[2:]))


@dataclass(frozen=True, slots=True, eq=False)
class DepthFrame:
    """One depth image: `depth[v, u]` in metres (NaN = no return).

    `color`, when the camera gives one, is uint8 RGB [H, W, 3] of the depth image's size and registered with it
    pixel for pixel: `color[v, u]` is what the colour camera saw along depth pixel (v, u)'s ray (the source
    reprojects one image into the other's camera; where that is unknown the pixel is black). None: no colour.
    """

    seq: int
    timestamp: float
    intrinsics: Intrinsics
    depth: np.ndarray
    color: np.ndarray | None = None

    def __post_init__(self) -> None:
        k = self.intrinsics
        d = self.depth
        if not isinstance(d, np.ndarray) or d.dtype != np.float32:
            raise FrameError(f"depth must be a float32 numpy array, got {getattr(d, 'dtype', type(d).__name__)}")
        if d.shape != (k.height, k.width):
            raise FrameError(f"depth shape {d.shape} does not match intrinsics {k.height}x{k.width}")
        if not math.isfinite(self.timestamp):
            raise FrameError(f"timestamp must be finite, got {self.timestamp}")
        valid = d[~np.isnan(d)]
        if valid.size and (valid.min() < 0 or valid.max() > MAX_RANGE_M or not np.all(np.isfinite(valid))):
            raise FrameError(f"depth values must lie in [0, {MAX_RANGE_M}] m or be NaN")
        c = self.color
        if c is not None:
            if not isinstance(c, np.ndarray) or c.dtype != np.uint8:
                raise FrameError(f"color must be a uint8 numpy array, got {getattr(c, 'dtype', type(c).__name__)}")
            if c.shape != (k.height, k.width, 3):
                raise FrameError(f"color shape {c.shape} does not match the depth image: want ({k.height}, "
                                 f"{k.width}, 3) RGB registered with the depth")

    @property
    def valid_fraction(self) -> float:
        return float(np.count_nonzero(~np.isnan(self.depth))) / self.depth.size


class DepthFrameSource(ABC):
    """Publishes frames on `frames` while `run()` runs; iterate it for the newest frames."""

    def __init__(self, name: str) -> None:
        self.frames: Topic[DepthFrame] = Topic(f"{name}.frames")
        self.incidents = Incidents(name)

    def subscribe(self) -> Subscription[DepthFrame]:
        return self.frames.subscribe(overflow="newest")

    def __aiter__(self) -> AsyncIterator[DepthFrame]:
        return self.subscribe()

    @abstractmethod
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Produce frames until cancelled (or the source is exhausted); closes `frames`."""


class PeriodicFrameSource(DepthFrameSource):
    """Captures a frame every 1/`rate_hz` seconds."""

    def __init__(self, name: str, rate_hz: float = 10.0) -> None:
        super().__init__(name)
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.rate_hz = rate_hz
        self._seq = 0

    @abstractmethod
    async def capture(self) -> DepthFrame | None:
        """The next frame, or None when there is none (e.g. the camera stalled)."""

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Publish a frame every 1/rate_hz seconds (absolute schedule) until cancelled."""
        period = 1.0 / self.rate_hz
        task_status.started()
        deadline = anyio.current_time()
        try:
            while True:
                frame = await self.capture()
                if frame is not None:
                    self.frames.publish(frame)
                deadline += period
                now = anyio.current_time()
                if deadline < now:  # fell behind: skip the missed slots, do not burst
                    missed = math.ceil((now - deadline) / period)
                    self.incidents.count("late", "frame source fell behind its rate", missed_frames=missed)
                    deadline += missed * period
                await anyio.sleep_until(deadline)
        finally:
            self.frames.close()
