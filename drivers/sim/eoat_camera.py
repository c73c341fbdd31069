"""The simulated cell's EOAT camera behind the RealSense SDK: a software device fed what the tool faces.

`SimEoatCamera(devices)` streams, at `fps`, frames of the simulated world as the camera on the tool sees it: the
bin the robot's last approach put the tool in front of (`CellRobotModel.tool`), from where the tool is (its z in
front of the pod face is the standoff, its x, y the camera's offset from the opening's middle; at the face, the
camera's default standoff), rendered by `camera_view.capture` (the structured-light artefacts, a light per
render, no labels) and injected into an `rs.software_device` (`realsense_device.SoftwareRealSense`). A frame is
rendered again only when the tool moved, the pod changed or the bin's contents did (its version); in between the
last one is sent again. Off every bin the camera sees nothing (no returns). Hand `.device` to
`RealSenseFrameSource(device=...)` (or `cellctl run`'s `camera_device`): the driver then runs on the real SDK.
"""

from __future__ import annotations

import copy

import anyio
import numpy as np
import structlog
from anyio.abc import TaskStatus

from ..camera import DepthFrame, Intrinsics
from .camera_view import capture
from .cell_devices import SimCellDevices, ToolPoint
from .realsense_device import SoftwareRealSense
from .world import Bin
from .world_render import CameraPose

__all__ = ["SimEoatCamera"]

NEAR_FACE_MM = 50.0  # a tool closer to the face than this is at work there: the camera keeps its default pose


class SimEoatCamera:
    """A RealSense software device showing the simulated world from the tool (run `run` in a task group)."""

    def __init__(self, devices: SimCellDevices, *, intrinsics: Intrinsics | None = None, fps: int = 15,
                 standoff_mm: float = 350.0, seed: int = 0, serial: str = "SIM-RS-0001") -> None:
        self.devices = devices
        self.k = intrinsics or Intrinsics.from_fov(320, 240, 70.0)
        self.fps = fps
        self.standoff_mm = standoff_mm
        self.sdk = SoftwareRealSense(self.k, color=self.k, fps=fps, serial=serial)
        self.device = self.sdk.device
        self.rng = np.random.default_rng([seed, 17])
        self.rendered = 0
        self.from_views = 0  # renders with the tool standing off in front of a bin (a view pose)
        self.sent = 0
        self.log = structlog.get_logger("sim.camera")
        self._key: tuple[object, ...] | None = None
        self._frame: tuple[np.ndarray, np.ndarray] | None = None

    def _view(self, tool: ToolPoint | None) -> tuple[tuple[object, ...], Bin | None, CameraPose | None]:
        cell = self.devices.cell
        if tool is None or tool.located is None:
            return ("off", cell.pods), None, None
        i, bx, by = tool.located
        b = cell.bin(i)
        if tool.z_mm <= -NEAR_FACE_MM:
            pose = CameraPose(-tool.z_mm, (bx - b.width_mm / 2, by - b.height_mm / 2))
        else:
            pose = CameraPose(self.standoff_mm)
        return (cell.pods, b.bin_id, cell.versions[b.bin_id], pose), b, pose

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Feed a frame every 1/fps s until cancelled."""
        period = 1.0 / self.fps
        task_status.started()
        while True:
            tool = self.devices.model.tool
            key, b, pose = self._view(tool)
            if key != self._key or self._frame is None:
                if b is None or pose is None:
                    h, w = self.k.height, self.k.width
                    self._frame = (np.full((h, w), np.nan, np.float32), np.full((h, w, 3), 40, np.uint8))
                else:
                    snapshot = copy.deepcopy(b)  # the world moves on the loop while the worker renders
                    frame = await anyio.to_thread.run_sync(self._render, snapshot, pose)
                    assert frame.color is not None
                    self._frame = (frame.depth, frame.color)
                    self.rendered += 1
                    self.from_views += int(tool is not None and tool.z_mm <= -NEAR_FACE_MM)
                self._key = key
            depth, color = self._frame
            self.sdk.feed(depth, color)
            self.sent += 1
            await anyio.sleep(period)

    def _render(self, b: Bin, pose: CameraPose) -> DepthFrame:
        return capture(b, self.k, pose, rng=self.rng, seq=self.rendered)
