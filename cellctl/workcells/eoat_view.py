"""The EOAT camera of a cell with real devices: a bin's frame, taken from the bin's view pose.

`ViewingCamera` is `LearnedPerception`'s `BinCamera` over a live `DepthFrameSource` (`drivers.realsense`).
`capture(bin)` runs in perception's worker thread; on the event loop it moves the tool to the bin's view pose (an
approach to the middle of the opening, `standoff_mm` in front of it: `view_motion`) through the workcell's own
`move` (guarded, logged, under its motion lock), then waits for a frame that arrived at least `settle_s` after
the move ended. It never hands out an older frame: a move that did not finish, a stale camera or no fresh frame
within `frame_timeout_s` raises `CameraError`, the plan fails with that reason and the cell hands off.

A bin's view is kept and handed out again while nothing may have changed it: for at most `max_view_age_s`, until
the cell's own next motion in that bin (`moved`, from perception's `motion_result`; a view move changes nothing),
until another pod is presented, and until the guards open (`forget`: someone may have reached in). A stow plan
then moves to the bins it has no current view of, not to all of them.

`LiveFrames` is the `FrameSource` a motion's scene watch reads: the newest frame's depth, refused when the camera
is stale.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import anyio.from_thread
import anyio.lowlevel
import numpy as np

from drivers.camera import CameraError, DepthFrame
from drivers.streams import Topic
from statecharts.workcell import Motion, MotionOutcome, MotionResult, Primitive

from .pod_layout import BinDims, PodLayout

__all__ = ["CameraError", "LiveFrames", "LiveSource", "ViewingCamera", "view_motion"]

Mover = Callable[[Motion], Awaitable[MotionResult]]
VIEW_TIMEOUT_S = 8.0
VIEW_FORCE_LIMIT_N = 25.0  # a free-space move: anything it touches stops it


class LiveSource(Protocol):
    """A live camera: its frames (each stamped with anyio.current_time() on arrival) and whether it is stale."""

    frames: Topic[DepthFrame]

    @property
    def stale(self) -> bool: ...


def view_motion(b: BinDims, index: int, standoff_mm: float, offset_mm: tuple[float, float] = (0.0, 0.0)) -> Motion:
    """The approach that puts the camera `standoff_mm` in front of bin `index`'s opening, centred (plus offset)."""
    return Motion(primitive=Primitive.APPROACH,
                  params={"bin": float(index), "x": round(b.width_mm / 2 + offset_mm[0], 1),
                          "y": round(b.height_mm / 2 + offset_mm[1], 1), "z": -float(standoff_mm)},
                  timeout_s=VIEW_TIMEOUT_S, force_limit_n=VIEW_FORCE_LIMIT_N, backoff_mm=20.0)


class ViewingCamera:
    """Frames of a bin from its view pose, for perception in a worker thread (`bind` the mover first)."""

    def __init__(self, source: LiveSource, layout: PodLayout, *, standoff_mm: float = 350.0,
                 settle_s: float = 0.1, frame_timeout_s: float = 2.0, max_view_age_s: float = 60.0) -> None:
        if not (standoff_mm > 0 and settle_s >= 0 and frame_timeout_s > 0 and max_view_age_s >= 0):
            raise ValueError(f"standoff_mm, frame_timeout_s must be > 0, settle_s and max_view_age_s >= 0, got "
                             f"{standoff_mm}, {frame_timeout_s}, {settle_s}, {max_view_age_s}")
        self.max_view_age_s = max_view_age_s
        self._kept: dict[str, DepthFrame] = {}  # bin id -> its last view (of pod `_kept_pod`)
        self._kept_pod: str | None = None
        self.source = source
        self.layout = layout
        self.standoff_mm = standoff_mm
        self.settle_s = settle_s
        self.frame_timeout_s = frame_timeout_s
        self._move: Mover | None = None
        self._record: Callable[[dict[str, Any]], None] | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._loop_thread: int | None = None
        self.views = 0  # frames handed out
        self.refused = 0  # captures that raised CameraError

    def bind(self, move: Mover, record: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Moves go through `move` (the workcell's); `record` gets each view taken or refused (for the event
        log). Call on the event loop."""
        self._move = move
        self._record = record
        self._token = anyio.lowlevel.current_token()
        self._loop_thread = threading.get_ident()

    def capture(self, b: BinDims) -> DepthFrame:
        """The bin's frame from its view pose (a worker thread: it waits on the event loop)."""
        if self._move is None or self._token is None:
            raise CameraError("the EOAT camera has no robot to move it (ViewingCamera.bind not called)")
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("ViewingCamera.capture is for worker threads; on the loop use capture_async")
        return anyio.from_thread.run(self.capture_async, b, token=self._token)

    def moved(self, motion: Motion) -> None:
        """A motion ended: the view of the bin it worked in is no longer current (a view move's is)."""
        if "bin" not in motion.params:
            return
        if motion.primitive is Primitive.APPROACH and motion.params.get("z", 0.0) < 0:
            return  # in front of the opening: it touched nothing
        try:
            self._kept.pop(self.layout.bin_at(motion.params["bin"]).bin_id, None)
        except LookupError:
            self._kept.clear()

    def forget(self) -> None:
        """No kept view is current any more (the guards opened: someone may have reached into the pod)."""
        self._kept.clear()

    def _kept_view(self, b: BinDims) -> DepthFrame | None:
        pod = self.layout.pod_id
        if pod != self._kept_pod:
            self._kept, self._kept_pod = {}, pod
        frame = self._kept.get(b.bin_id)
        if frame is None or anyio.current_time() - frame.timestamp >= self.max_view_age_s:
            self._kept.pop(b.bin_id, None)
            return None
        return frame

    async def capture_async(self, b: BinDims) -> DepthFrame:
        kept = self._kept_view(b)
        if kept is not None:
            if self._record is not None:
                self._record({"bin": b.bin_id, "ok": True, "frame_seq": kept.seq, "kept": True})
            return kept
        t0 = anyio.current_time()
        try:
            frame = await self._capture(b)
        except CameraError as exc:
            self.refused += 1
            if self._record is not None:
                self._record({"bin": b.bin_id, "ok": False, "detail": str(exc)})
            raise
        if self._record is not None:
            self._record({"bin": b.bin_id, "ok": True, "frame_seq": frame.seq,
                          "took_s": round(anyio.current_time() - t0, 4)})
        if self.max_view_age_s > 0:
            self._kept[b.bin_id] = frame
        return frame

    async def _capture(self, b: BinDims) -> DepthFrame:
        assert self._move is not None
        if self.source.stale:
            raise CameraError("the EOAT camera is stale (no frame within its stale_after_s): no view of "
                              f"{b.bin_id}")
        with self.source.frames.subscription(overflow="newest") as frames:
            result = await self._move(view_motion(b, self.layout.bin_index(b.bin_id), self.standoff_mm))
            if result.outcome is not MotionOutcome.DONE:
                raise CameraError(f"the view move to {b.bin_id} ended {result.outcome.value}: {result.detail}")
            fresh_after = anyio.current_time() + self.settle_s
            with anyio.move_on_after(self.frame_timeout_s):
                while True:
                    try:
                        frame = await frames.receive()
                    except anyio.EndOfStream:
                        raise CameraError("the EOAT camera's stream ended (camera closed)") from None
                    if frame.timestamp >= fresh_after:
                        self.views += 1
                        return frame
        raise CameraError(f"no frame of {b.bin_id} within {self.frame_timeout_s:.1f} s of the view move"
                          + (" (the camera is stale)" if self.source.stale else ""))


class LiveFrames:
    """The newest frame's depth (m) for a motion's scene watch: a `FrameSource` over a live camera."""

    def __init__(self, source: LiveSource, *, noise_k: float = 0.0025) -> None:
        self.source = source
        self.noise_k = noise_k  # the change detector's depth noise model (sigma = noise_k * z^2)
        self._last: DepthFrame | None = None
        source.frames.add_tap(self._keep)

    def _keep(self, frame: DepthFrame) -> None:
        self._last = frame

    def frame(self, bin_index: int) -> np.ndarray:
        """The newest depth image (the camera looks at the bin the tool is at); CameraError if none is current."""
        last = self._last
        if last is None or self.source.stale:
            raise CameraError("no current EOAT camera frame" + (" (the camera is stale)" if self.source.stale else ""))
        return last.depth
