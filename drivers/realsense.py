"""An Intel RealSense EOAT camera as a `DepthFrameSource` (pyrealsense2, the SDK's own wheel).

    RealSenseFrameSource(RealSenseConfig(serial="123456789012", filters=("threshold", "spatial")))

`run()` opens the camera (by serial, or the `rs.device` given: the SDK's software device in the tests), streams
depth (z16, scaled by the frame's depth units to float32 metres, 0 -> NaN) and, with `color`, rgb8 registered to
the depth (`drivers.realsense_config` says which way), applies the configured SDK filters in the SDK's order and
publishes a `DepthFrame` per frameset on `frames`. The SDK's blocking wait runs in a worker thread, in slices of
at most `WAIT_SLICE_S` so a cancel is honoured promptly. A camera that cannot be opened raises `CameraError`
from `run()` before it reports started.

Counted in `incidents`: `dropped` (gaps in the depth frame numbers; `dropped_frames` is the sum), `late` (a frame
that came more than `LATE_PERIODS` frame periods after the one before, without a gap), `stale` (no frame for
`stale_after_s`), `frame_number_reset`, `unpaired`, `no_depth`, `sdk_error`, `bad_frame`, `reopen` (stale for a
further `reopen_after_s`: the camera is closed and opened again, by serial) and `reopen_failed` (it could not be: tried
again every `reopen_after_s`). `status` publishes a
`CameraStatus` on every change between waiting, live and stale; `stale` says whether the newest frame is old, so
a consumer never takes it as current (frames are stamped with `anyio.current_time()` on arrival).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskStatus

from .camera import CameraError, DepthFrame, DepthFrameSource, FrameError
from .ft import StreamState
from .realsense_config import RealSenseConfig
from .realsense_sdk import RawFrame, SdkStream, Skipped
from .streams import Topic

__all__ = ["CameraStatus", "RealSenseFrameSource", "StreamState"]

WAIT_SLICE_S = 0.1  # longest single SDK wait: how long a cancel may wait for the worker thread
LATE_PERIODS = 2.0


@dataclass(frozen=True, slots=True)
class CameraStatus:
    state: StreamState
    t: float  # anyio.current_time() of the change
    last_frame_t: float | None  # arrival of the last frame, None if none yet

    @property
    def stale(self) -> bool:
        return self.state is StreamState.STALE

    @property
    def live(self) -> bool:
        return self.state is StreamState.LIVE


class RealSenseFrameSource(DepthFrameSource):
    """A RealSense camera's frames on `frames`, its liveness on `status`."""

    def __init__(self, config: RealSenseConfig | None = None, *, device: Any | None = None,
                 context: Any | None = None, name: str = "realsense_camera") -> None:
        super().__init__(name)
        self.config = config or RealSenseConfig()
        self._device = device
        self._context = context
        self.status: Topic[CameraStatus] = Topic(f"{name}.status")
        self.state = StreamState.WAITING
        self.camera: str | None = None  # the opened camera's name and serial
        self.depth_units_m: float | None = None  # the depth sensor's units (each frame carries its own too)
        self.filter_chain: tuple[str, ...] = ()  # the SDK blocks each frame goes through, in order
        self.dropped_frames = 0
        self.last_frame_t: float | None = None
        self.last_frame_number: int | None = None
        self._seq = 0
        self._since = 0.0  # the stale clock: the last frame, or the start

    @property
    def stale(self) -> bool:
        """No frame for `stale_after_s`: the newest frame is not current."""
        return self.state is StreamState.STALE

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Open the camera (CameraError if it cannot be), then publish frames until cancelled; a camera stale
        for `reopen_after_s` is closed and opened again (every `reopen_after_s` until it streams)."""
        sdk: SdkStream | None = None
        try:
            sdk = await self._open()
            self._since = anyio.current_time()
            self._set_state(StreamState.WAITING, self._since)
            task_status.started()
            while True:
                if sdk is not None:
                    await self._stream(sdk)  # returns when the camera has been stale for reopen_after_s
                    await self._close(sdk)
                    sdk = None
                    self.incidents.count("reopen", "camera stale: closed to open it again",
                                         silent_s=round(anyio.current_time() - self._since, 3))
                try:
                    sdk = await self._open()
                except CameraError as exc:
                    self.incidents.count("reopen_failed", "camera could not be opened again", error=str(exc))
                    await anyio.sleep(self.config.reopen_after_s)
                    continue
                self.last_frame_number = None  # a reopened camera numbers its frames afresh
                self._since = anyio.current_time()
        finally:
            if sdk is not None:
                await self._close(sdk)
            self.frames.close()
            self.status.close()

    async def _open(self) -> SdkStream:
        sdk = await anyio.to_thread.run_sync(SdkStream, self.config, self._device, self._context)
        self.camera = sdk.name
        self.depth_units_m = sdk.units_m
        self.filter_chain = tuple(name for name, _ in sdk.filters)
        self.incidents.info("camera streaming", camera=sdk.name, depth_units_m=sdk.units_m, stereo=sdk.stereo,
                            filters=list(self.filter_chain), color=self.config.color, align=self.config.align)
        return sdk

    @staticmethod
    async def _close(sdk: SdkStream) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(sdk.close)

    async def _stream(self, sdk: SdkStream) -> None:
        stale_after, reopen_after = self.config.stale_after_s, self.config.reopen_after_s
        while True:
            left = self._since + stale_after - anyio.current_time()
            wait = WAIT_SLICE_S if self.stale else min(max(left, 0.005), WAIT_SLICE_S)
            got = await anyio.to_thread.run_sync(sdk.read, wait)
            now = anyio.current_time()
            if isinstance(got, RawFrame):
                self._accept(got, now)
            elif isinstance(got, Skipped):
                if got.frame_number is not None:
                    self._count_gap(got.frame_number)
                self.incidents.count(got.kind, got.message)
                if got.kind == "sdk_error":  # it may fail at once every time (a camera unplugged): do not spin
                    await anyio.sleep(WAIT_SLICE_S)
                    now = anyio.current_time()
            if not self.stale and now - self._since >= stale_after:
                self.incidents.count("stale", "no frame from the camera: stale", silent_s=round(now - self._since, 3),
                                     last_frame_number=self.last_frame_number)
                self._set_state(StreamState.STALE, now)
            if self.stale and reopen_after and now - self._since >= stale_after + reopen_after:
                return

    def _count_gap(self, number: int) -> int:
        last = self.last_frame_number
        self.last_frame_number = number
        if last is None:
            return 0
        if number <= last:
            self.incidents.count("frame_number_reset", "depth frame number went back (camera restarted?)",
                                 frame_number=number, previous=last)
            return 0
        gap = number - last - 1
        if gap:
            self.dropped_frames += gap
            self.incidents.count("dropped", "depth frames dropped (frame-number gap)", missed=gap,
                                 frame_number=number, dropped_total=self.dropped_frames)
        return gap

    def _accept(self, raw: RawFrame, now: float) -> None:
        gap = self._count_gap(raw.frame_number)
        previous = self.last_frame_t
        try:
            frame = DepthFrame(self._seq, now, raw.intrinsics, raw.depth_m, raw.color)
        except FrameError as exc:
            self.incidents.count("bad_frame", "camera frame failed validation", error=str(exc),
                                 frame_number=raw.frame_number)
            return
        if previous is not None and not gap and not self.stale and now - previous > LATE_PERIODS / self.config.fps:
            self.incidents.count("late", "camera frame came late", interval_s=round(now - previous, 4),
                                 frame_number=raw.frame_number)
        self._seq += 1
        self.last_frame_t = self._since = now
        if self.state is not StreamState.LIVE:
            if self.state is StreamState.STALE:
                self.incidents.info("camera frames again", frame_number=raw.frame_number)
            self._set_state(StreamState.LIVE, now)
        self.frames.publish(frame)

    def _set_state(self, state: StreamState, now: float) -> None:
        self.state = state
        self.status.publish(CameraStatus(state, now, self.last_frame_t))
