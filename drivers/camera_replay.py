"""Record depth frames to `.npz` files and replay them as a `DepthFrameSource`."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from .camera import DepthFrame, DepthFrameSource, FrameError, Intrinsics

KEYS = ("depth", "intrinsics", "timestamp", "seq")  # and "color" when the frame has one


def save_frame(directory: Path, frame: DepthFrame) -> Path:
    """Write one frame as `frame_<seq>.npz` (sorted replay order = seq order), with its colour image if any."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"frame_{frame.seq:08d}.npz"
    arrays: dict[str, Any] = {"depth": frame.depth, "intrinsics": frame.intrinsics.as_array(),
                              "timestamp": frame.timestamp, "seq": frame.seq}
    if frame.color is not None:
        arrays["color"] = frame.color
    np.savez_compressed(path, **arrays)
    return path


def load_frame(path: Path) -> DepthFrame:
    """Read and validate one recorded frame; `FrameError` says what is wrong."""
    if not zipfile.is_zipfile(path):
        raise FrameError(f"{path.name}: not a readable .npz frame (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in KEYS if k not in data.files]
            if missing:
                raise FrameError(f"{path.name}: missing arrays {missing}")
            depth = data["depth"]
            intrinsics = Intrinsics.from_array(data["intrinsics"])
            timestamp = float(data["timestamp"])
            seq = int(data["seq"])
            color = data["color"] if "color" in data.files else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, FrameError):
            raise
        raise FrameError(f"{path.name}: not a readable .npz frame ({exc})") from exc
    try:
        return DepthFrame(seq, timestamp, intrinsics, depth, color)
    except FrameError as exc:
        raise FrameError(f"{path.name}: {exc}") from exc


class ReplayDepthSource(DepthFrameSource):
    """Replays `frame_*.npz` from a directory, paced by their recorded timestamps.

    `speed` scales the pacing (2.0 = twice as fast); the frames keep their recorded
    timestamps. Unreadable or invalid files are counted, logged and skipped.
    """

    def __init__(self, directory: Path, *, speed: float = 1.0, loop: bool = False) -> None:
        super().__init__("replay_camera")
        if not directory.is_dir():
            raise FileNotFoundError(f"replay directory {directory} does not exist")
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.paths = sorted(directory.glob("frame_*.npz"))
        if not self.paths:
            raise FileNotFoundError(f"no frame_*.npz files in {directory}")
        self.speed = speed
        self.loop = loop
        self.finished = anyio.Event()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await self._play_once()
                if not self.loop:
                    break
        finally:
            self.finished.set()
            self.frames.close()

    async def _play_once(self) -> None:
        start = anyio.current_time()
        first: float | None = None
        for path in self.paths:
            try:
                frame = await anyio.to_thread.run_sync(load_frame, path)
            except FrameError as exc:
                self.incidents.count("bad_frame", "skipping unreadable recorded frame", error=str(exc))
                continue
            first = frame.timestamp if first is None else first
            offset = (frame.timestamp - first) / self.speed
            if offset < 0:
                self.incidents.count("time_backwards", "recorded frame timestamp goes backwards", file=path.name)
                offset = 0.0
            await anyio.sleep_until(start + offset)
            self.frames.publish(frame)
