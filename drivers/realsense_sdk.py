"""The synchronous SDK side of the RealSense driver: open a device, stream, filter, convert (pyrealsense2).

Everything here blocks (the SDK's waits) and runs in a worker thread; `drivers.realsense` drives it from the
event loop. Every SDK failure becomes a `CameraError` naming the camera and what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyrealsense2 as rs

from .camera import MAX_RANGE_M, CameraError, FrameError, Intrinsics
from .realsense_config import RealSenseConfig


@dataclass(frozen=True, slots=True, eq=False)
class RawFrame:
    """One processed frameset, as numpy (the SDK's frames are released before this leaves the thread)."""

    frame_number: int  # the depth frame's SDK frame number (gaps: frames dropped)
    sdk_timestamp_ms: float
    units_m: float  # metres per z16 count (the frame's own depth units)
    intrinsics: Intrinsics
    depth_m: np.ndarray  # float32, NaN where z16 was 0 (no return) or beyond MAX_RANGE_M
    color: np.ndarray | None  # uint8 [H, W, 3] registered with depth_m


@dataclass(frozen=True, slots=True)
class Skipped:
    """A frameset that gives no frame: `kind` is the incident it counts as."""

    kind: str  # "no_depth" | "unpaired" | "sdk_error" | "bad_frame"
    message: str
    frame_number: int | None = None  # the depth frame's, when there was one


@contextmanager
def sdk_errors(what: str) -> Iterator[None]:
    """SDK RuntimeErrors as a CameraError saying what was being done."""
    try:
        yield
    except RuntimeError as exc:  # pyrealsense2 raises its errors as RuntimeError subclasses
        raise CameraError(f"{what}: {exc}") from exc


def _info(device: Any, info: Any) -> str | None:
    return str(device.get_info(info)) if device.supports(info) else None


def describe(device: Any) -> str:
    name = _info(device, rs.camera_info.name) or "RealSense device"
    serial = _info(device, rs.camera_info.serial_number)
    return f"{name} (serial {serial})" if serial else name


def find_device(context: Any, serial: str | None) -> Any:
    """The connected camera with `serial` (None: the only one); CameraError names the cameras there are."""
    with sdk_errors("RealSense: cannot list the connected cameras"):
        devices = list(context.query_devices())
        found = [(_info(d, rs.camera_info.serial_number), d) for d in devices]
    there = ", ".join(describe(d) for _, d in found) or "none connected"
    if serial is None:
        if len(found) != 1:
            raise CameraError(f"RealSense: camera.serial not set and {len(found)} cameras are connected ({there}): "
                              "set serial to choose one" if found else "RealSense: no camera connected")
        return found[0][1]
    for s, d in found:
        if s == serial:
            return d
    raise CameraError(f"RealSense: no camera with serial {serial!r} (cameras: {there})")


def _format_name(fmt: Any) -> str:
    return str(fmt).removeprefix("format.")


def find_profile(device: Any, stream: Any, fmt: Any, width: int, height: int, fps: int) -> tuple[int, Any]:
    """(sensor index, profile) of the stream mode asked for; CameraError lists the modes the camera offers."""
    offered: list[str] = []
    with sdk_errors(f"{describe(device)}: cannot read its stream modes"):
        for index, sensor in enumerate(device.query_sensors()):
            for p in sensor.get_stream_profiles():
                if p.stream_type() != stream or not p.is_video_stream_profile():
                    continue
                v = p.as_video_stream_profile()
                if p.format() == fmt and v.width() == width and v.height() == height and p.fps() == fps:
                    return index, p
                offered.append(f"{v.width()}x{v.height()} {_format_name(p.format())} @ {p.fps()} fps")
    kind = str(stream).removeprefix("stream.")
    want = f"{width}x{height} {_format_name(fmt)} @ {fps} fps"
    modes = ", ".join(sorted(set(offered))) if offered else f"no {kind} stream at all"
    raise CameraError(f"{describe(device)}: no {kind} stream {want}; it offers: {modes}")


def intrinsics_of(frame: Any) -> Intrinsics:
    """Pinhole intrinsics of a video frame's stream profile (distortion coefficients are not carried)."""
    k = frame.get_profile().as_video_stream_profile().get_intrinsics()
    return Intrinsics(int(k.width), int(k.height), float(k.fx), float(k.fy), float(k.ppx), float(k.ppy))


def to_metres(z16: np.ndarray, units_m: float) -> np.ndarray:
    """z16 counts -> float32 metres; 0 (no return) and anything beyond MAX_RANGE_M -> NaN."""
    depth = z16.astype(np.float32) * np.float32(units_m)
    depth[(z16 == 0) | (depth > MAX_RANGE_M)] = np.nan
    return depth


def _block(make: Callable[[], Any], options: dict[Any, float]) -> Any:
    block = make()
    for option, value in options.items():
        block.set_option(option, float(value))
    return block


def _filter(cfg: RealSenseConfig, name: str) -> Any:
    o = rs.option
    if name == "decimation":
        return _block(rs.decimation_filter, {o.filter_magnitude: cfg.decimation_magnitude})
    if name == "threshold":
        return _block(rs.threshold_filter, {o.min_distance: cfg.threshold_min_m, o.max_distance: cfg.threshold_max_m})
    if name == "spatial":
        return _block(rs.spatial_filter, {o.filter_magnitude: cfg.spatial_magnitude,
                                          o.filter_smooth_alpha: cfg.spatial_alpha,
                                          o.filter_smooth_delta: cfg.spatial_delta,
                                          o.holes_fill: cfg.spatial_holes_fill})
    if name == "temporal":
        return _block(rs.temporal_filter, {o.filter_smooth_alpha: cfg.temporal_alpha,
                                           o.filter_smooth_delta: cfg.temporal_delta,
                                           o.holes_fill: cfg.temporal_persistence})
    if name == "hole_filling":
        return _block(rs.hole_filling_filter, {o.holes_fill: cfg.hole_filling_mode})
    raise CameraError(f"RealSense: unknown filter {name!r}")  # the config's Literal keeps this unreachable


DISPARITY_FILTERS = ("spatial", "temporal")  # run in the disparity domain on a stereo sensor


def build_filters(cfg: RealSenseConfig, stereo: bool) -> list[tuple[str, Any]]:
    """The configured SDK filters as (name, processing block), in the SDK's recommended order.

    On a stereo sensor spatial and temporal run on disparity: a depth->disparity transform before the first of
    them, disparity->depth after the last.
    """
    chain: list[tuple[str, Any]] = []
    in_disparity = False
    for name in cfg.ordered_filters():
        if stereo and name in DISPARITY_FILTERS and not in_disparity:
            chain.append(("depth_to_disparity", rs.disparity_transform(True)))
            in_disparity = True
        elif in_disparity and name not in DISPARITY_FILTERS:
            chain.append(("disparity_to_depth", rs.disparity_transform(False)))
            in_disparity = False
        chain.append((name, _filter(cfg, name)))
    if in_disparity:
        chain.append(("disparity_to_depth", rs.disparity_transform(False)))
    return chain


class SdkStream:
    """An opened, streaming RealSense device: `read()` the next processed frame, `close()` when done."""

    def __init__(self, cfg: RealSenseConfig, device: Any | None = None, context: Any | None = None) -> None:
        self.cfg = cfg
        if device is None:
            device = find_device(context if context is not None else _new_context(), cfg.serial)
        elif cfg.serial is not None and _info(device, rs.camera_info.serial_number) != cfg.serial:
            raise CameraError(f"RealSense: the camera given is {describe(device)}, not serial {cfg.serial!r}")
        self.device = device
        self.name = describe(device)
        self._sensors: list[Any] = []
        self._started: list[Any] = []
        self._opened: list[Any] = []
        try:
            with sdk_errors(f"{self.name}: cannot open its streams"):
                self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        cfg = self.cfg
        sensors = list(self.device.query_sensors())
        wanted: dict[int, list[Any]] = {}
        d_index, d_profile = find_profile(self.device, rs.stream.depth, rs.format.z16, cfg.depth_width,
                                          cfg.depth_height, cfg.fps)
        wanted.setdefault(d_index, []).append(d_profile)
        if cfg.color:
            c_index, c_profile = find_profile(self.device, rs.stream.color, rs.format.rgb8, cfg.color_width,
                                              cfg.color_height, cfg.fps)
            wanted.setdefault(c_index, []).append(c_profile)
        depth_sensor = sensors[d_index]
        self.units_m = float(depth_sensor.as_depth_sensor().get_depth_scale()) if depth_sensor.is_depth_sensor() \
            else 0.001
        self.stereo = bool(depth_sensor.supports(rs.option.stereo_baseline))
        self.filters = build_filters(cfg, self.stereo)
        self.align = (rs.align(rs.stream.color if cfg.align else rs.stream.depth)) if cfg.color else None
        self.syncer = rs.syncer(2)
        for index, profiles in wanted.items():
            sensor = sensors[index]
            sensor.open(profiles if len(profiles) > 1 else profiles[0])
            self._opened.append(sensor)
        for sensor in self._opened:
            sensor.start(self.syncer)
            self._started.append(sensor)

    def read(self, timeout_s: float) -> RawFrame | Skipped | None:
        """The next frameset within `timeout_s`, filtered, aligned and converted; None if none came."""
        try:
            ok, frames = self.syncer.try_wait_for_frames(max(1, int(timeout_s * 1000)))
            if not ok:
                return None
            return self._process(frames.as_frameset())
        except RuntimeError as exc:
            return Skipped("sdk_error", f"{self.name}: {exc}")

    def _process(self, fs: Any) -> RawFrame | Skipped:
        depth = fs.get_depth_frame()
        if not depth:
            return Skipped("no_depth", "a frameset without depth (colour alone) skipped")
        number = int(depth.get_frame_number())
        if self.align is not None and not fs.get_color_frame():
            return Skipped("unpaired", "a depth frame without its colour frame skipped", number)
        stamp = float(depth.get_timestamp())
        frame = fs
        for _, block in self.filters:
            frame = block.process(frame)
        if self.align is not None:
            frame = self.align.process(frame.as_frameset())
        out = frame.as_frameset()
        depth = out.get_depth_frame()
        units = float(depth.get_units()) or self.units_m
        try:
            k = intrinsics_of(depth)
        except FrameError as exc:
            return Skipped("bad_frame", f"unusable intrinsics from the SDK: {exc}", number)
        depth_m = to_metres(np.asanyarray(depth.get_data()), units)
        color = None
        if self.align is not None:
            color = np.array(out.get_color_frame().get_data(), dtype=np.uint8, copy=True)
        return RawFrame(number, stamp, units, k, depth_m, color)

    def close(self) -> None:
        """Stop and close the sensors (errors on the way are ignored: the device may be gone)."""
        for sensor in self._started:
            with suppress(RuntimeError):
                sensor.stop()
        for sensor in self._opened:
            with suppress(RuntimeError):
                sensor.close()
        self._started.clear()
        self._opened.clear()


def _new_context() -> Any:
    with sdk_errors("RealSense: cannot start the SDK"):
        return rs.context()
