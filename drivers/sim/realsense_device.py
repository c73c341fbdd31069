"""A RealSense camera made of the SDK's own software device, fed the simulator's depth frames.

`SoftwareRealSense(intrinsics)` builds an `rs.software_device` with a depth sensor (z16 at the given depth units,
and a stereo baseline if asked: the D400 kind) and optionally an RGB sensor (rgb8); `feed(depth_m, color)`
quantises a float32 metres image (NaN = no return -> 0) and injects it. Hand `.device` to
`RealSenseFrameSource(device=...)`: the driver then runs on the real SDK (syncer, filters, align), not a mock.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyrealsense2 as rs

from ..camera import Intrinsics

__all__ = ["SoftwareRealSense", "quantise"]


def quantise(depth_m: np.ndarray, units_m: float) -> np.ndarray:
    """float32 metres -> z16 counts of `units_m` (NaN, <= 0 -> 0; beyond the z16 range -> 0, no return)."""
    counts = np.rint(np.nan_to_num(np.asarray(depth_m, dtype=np.float64), nan=0.0) / units_m)
    counts[(counts <= 0) | (counts > 0xFFFF)] = 0
    return counts.astype(np.uint16)


def _intrinsics(k: Intrinsics) -> Any:
    out = rs.intrinsics()
    out.width, out.height = k.width, k.height
    out.fx, out.fy, out.ppx, out.ppy = k.fx, k.fy, k.cx, k.cy
    out.model = rs.distortion.none
    out.coeffs = [0.0] * 5
    return out


def _stream(kind: Any, fmt: Any, bpp: int, k: Intrinsics, fps: int, uid: int) -> Any:
    s = rs.video_stream()
    s.type, s.fmt, s.bpp = kind, fmt, bpp
    s.width, s.height, s.fps = k.width, k.height, fps
    s.intrinsics = _intrinsics(k)
    s.index, s.uid = 0, uid
    return s


class SoftwareRealSense:
    """A software RealSense: depth (and colour) sensors whose frames `feed()` injects."""

    def __init__(self, depth: Intrinsics, *, depth_units_m: float = 0.001, fps: int = 30,
                 serial: str = "SIM-RS-0001", color: Intrinsics | None = None,
                 stereo_baseline_mm: float | None = None) -> None:
        if not 0 < depth_units_m <= 0.01:
            raise ValueError(f"depth units must be in (0, 0.01] m, got {depth_units_m}")
        self.units_m = depth_units_m
        self.depth_intrinsics = depth
        self.color_intrinsics = color
        self.fps = fps
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.name, "Simulated RealSense (SDK software device)")
        self.device.register_info(rs.camera_info.serial_number, serial)
        self._depth = self.device.add_sensor("Stereo Module")
        self._depth_profile = self._depth.add_video_stream(_stream(rs.stream.depth, rs.format.z16, 2, depth, fps, 1))
        self._depth.add_read_only_option(rs.option.depth_units, depth_units_m)
        if stereo_baseline_mm is not None:
            self._depth.add_read_only_option(rs.option.stereo_baseline, stereo_baseline_mm)
        self._color: Any | None = None
        self._color_profile: Any | None = None
        if color is not None:
            self._color = self.device.add_sensor("RGB Camera")
            self._color_profile = self._color.add_video_stream(
                _stream(rs.stream.color, rs.format.rgb8, 3, color, fps, 2))
            same_place = rs.extrinsics()
            same_place.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
            same_place.translation = [0.0, 0.0, 0.0]
            self._depth_profile.register_extrinsics_to(self._color_profile, same_place)
            self.device.create_matcher(rs.matchers.dlr_c)  # the syncer pairs depth and colour by timestamp
        self.frame_number = 0

    def feed(self, depth_m: np.ndarray, color: np.ndarray | None = None, *, frame_number: int | None = None,
             timestamp_ms: float | None = None) -> int:
        """Inject one depth frame (and colour frame, same number and time); returns the frame number used."""
        number = self.frame_number if frame_number is None else frame_number
        self.frame_number = number + 1
        stamp = number * 1000.0 / self.fps if timestamp_ms is None else timestamp_ms
        k = self.depth_intrinsics
        z16 = quantise(depth_m, self.units_m)
        if z16.shape != (k.height, k.width):
            raise ValueError(f"depth shape {z16.shape} is not the sensor's {k.height}x{k.width}")
        self._depth.on_video_frame(self._frame(z16, 2, k.width, self._depth_profile, number, stamp, self.units_m))
        if color is not None:
            c = self.color_intrinsics
            if self._color is None or c is None:
                raise ValueError("this software camera has no colour sensor")
            rgb = np.ascontiguousarray(color, dtype=np.uint8)
            if rgb.shape != (c.height, c.width, 3):
                raise ValueError(f"colour shape {rgb.shape} is not the sensor's ({c.height}, {c.width}, 3)")
            self._color.on_video_frame(self._frame(rgb, 3, c.width, self._color_profile, number, stamp, None))
        return number

    @staticmethod
    def _frame(pixels: np.ndarray, bpp: int, width: int, profile: Any, number: int, stamp: float,
               units: float | None) -> Any:
        f = rs.software_video_frame()
        f.pixels = pixels  # copied by the SDK's binding
        f.bpp, f.stride = bpp, width * bpp
        f.timestamp, f.domain = stamp, rs.timestamp_domain.hardware_clock
        f.frame_number = number
        f.profile = profile.as_video_stream_profile()
        if units is not None:
            f.depth_units = units
        return f
