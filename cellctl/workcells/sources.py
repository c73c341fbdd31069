"""Where a run's devices are: the built-in simulated cell in this process, or external devices at endpoints.

`open_devices(cfg, tg)` gives `cellctl run` everything the driver workcell needs besides the drivers themselves:
the endpoints the drivers connect to, the EOAT camera with its perception, and (for pick runs) the pick orders.

    devices = "sim"       SimCellDevices starts in `tg`: PLC (OPC UA), robot (Modbus TCP), F/T (UDP) servers on
                          127.0.0.1 over one seeded world ([sim]); camera, perception and orders read that world
                          in this process (WorldCamera, WorldPerception, SimOrders).
    devices = "external"  the endpoints of [plc] url, [robot] host/port, [ft] host/port, and the camera of [camera]:
                          kind = "realsense", an Intel RealSense on the EOAT (`drivers.realsense`) with learned
                          perception on its frames alone, over the pod the PLC presents and the FC's catalogue
                          ([perception] catalogue); a bin's frame is taken from its view pose, the robot moved
                          there by the workcell (`eoat_view.ViewingCamera`, bound by `CellDevices.attach`).
                          kind = "sim-service": RemoteSim, connected in `tg`, to the world `cellctl devices --sim`
                          serves in another process (camera, perception and orders).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from cellctl.config import EXTERNAL_NEEDS_CAMERA, ConfigError, PerceptionSection, RunConfig
from cellctl.fc.catalogue import CatalogueDirectory, CatalogueFileError
from cellctl.workcells.drivers import DriverWorkcell, FrameSource, OrderSource, Perception
from cellctl.workcells.eoat_view import LiveFrames, ViewingCamera
from cellctl.workcells.learned_models import load_models
from cellctl.workcells.learned_perception import LearnedPerception, NoCatalogue, ReferenceSource
from cellctl.workcells.planning_perception import CameraConfig as PlannerCameraConfig
from cellctl.workcells.planning_perception import PlanningPerception
from cellctl.workcells.pod_layout import CurrentPod
from cellctl.workcells.remote_sim import RemoteSim
from cellctl.workcells.sim_frames import sim_learned_perception
from cellctl.workcells.sim_perception import WorldPerception, scene_of
from cellctl.workcells.sim_sources import SimOrders, WorldCamera
from drivers.sim.cell import SimCell
from drivers.sim.cell_devices import Endpoints, SimCellConfig, SimCellDevices

if TYPE_CHECKING:
    from drivers.realsense import RealSenseFrameSource

__all__ = ["EXTERNAL_FT_RATE_HZ", "REALSENSE_NEEDS_COLOR", "REALSENSE_NEEDS_LEARNED_PERCEPTION",
           "REALSENSE_PICK_NEEDS_CATALOGUE", "CellDevices", "Endpoints", "check_devices", "make_perception",
           "open_devices"]

# The F/T stream rate assumed for external devices (the event log's batch rate; the reflex is built for 1 kHz,
# an ATI Net F/T's RDT default and `cellctl devices --sim`'s).
EXTERNAL_FT_RATE_HZ = 1000.0

REALSENSE_NEEDS_LEARNED_PERCEPTION = (
    "perception.mode: 'oracle' reads the simulator's labels, which a real camera does not give: a RealSense camera "
    "([camera] kind = 'realsense') runs learned perception (mode = 'learned', the default)")
REALSENSE_NEEDS_COLOR = (
    "camera.color: the learned models need RGB beside depth (docs/models.md): set color = true for kind = 'realsense'")
REALSENSE_PICK_NEEDS_CATALOGUE = (
    "perception.catalogue: a pick run with a RealSense camera identifies the ordered item by the FC's product images: "
    "name their directory (docs/catalogue.md; `cellctl catalogue export` writes the simulated FC's)")


def check_devices(cfg: RunConfig) -> None:
    """Refuse, with one line (ConfigError), devices this run could not use: before anything starts."""
    if cfg.cell.devices != "external" or cfg.camera.kind != "realsense":
        return
    if cfg.perception.mode != "learned":
        raise ConfigError(REALSENSE_NEEDS_LEARNED_PERCEPTION)
    if not cfg.camera.color:
        raise ConfigError(REALSENSE_NEEDS_COLOR)
    if cfg.cell.task == "pick" and cfg.perception.catalogue is None:
        raise ConfigError(REALSENSE_PICK_NEEDS_CATALOGUE)


@dataclass(frozen=True)
class CellDevices:
    """A run's devices: where the drivers connect, and the camera, perception and orders beside them."""

    kind: str  # "sim" | "external"
    endpoints: Endpoints
    perception: Perception
    frames: FrameSource
    orders: OrderSource | None  # None: a stow run (no pick orders)
    sim: SimCellDevices | None = None  # the in-process simulated cell (devices = "sim")
    remote: RemoteSim | None = None  # the sim-service client (devices = "external", [camera] kind = "sim-service")
    camera: RealSenseFrameSource | None = None  # the EOAT camera ([camera] kind = "realsense")
    # Called with the run's DriverWorkcell once it exists, on the loop (a real camera's views are its moves).
    attach: Callable[[DriverWorkcell], None] | None = None

    def describe(self) -> dict[str, Any]:
        """For the log: every endpoint and where camera, perception and orders come from."""
        ep = self.endpoints
        out: dict[str, Any] = {"devices": self.kind, "opcua": ep.opcua_url, "modbus": f"{ep.modbus[0]}:{ep.modbus[1]}",
                               "ft": f"{ep.ft[0]}:{ep.ft[1]}", "ft_rate_hz": ep.ft_rate_hz}
        if self.remote is not None:
            out["camera"] = f"sim-service {self.remote.host}:{self.remote.port}"
        elif self.camera is not None:
            out["camera"] = f"realsense {self.camera.camera or '(not open)'}"
        else:
            out["camera"] = "simulated world (in process)"
        out["orders"] = "none (stow)" if self.orders is None else out["camera"]
        if self.camera is not None:
            out["orders"] = "the FC's pick requests"
        out["perception"] = getattr(self.perception, "kind", "sim-service")
        return out


def make_perception(section: PerceptionSection, cell: SimCell) -> PlanningPerception:
    """The simulated cell's perception: learned (the models on its camera's frames; raises ModelError) or the
    oracle (the renderer's labels)."""
    if section.mode == "oracle":
        return WorldPerception(cell)
    return sim_learned_perception(cell, load_models(section))


async def open_devices(cfg: RunConfig, tg: TaskGroup, *, camera_device: Any | None = None) -> CellDevices:
    """Start (sim) or connect to (external) the run's devices in `tg`; return once they are served or connected.

    sim: the simulated devices listen when this returns. external: the camera service has answered, or the
    RealSense streams (`camera_device`: that device instead of the one [camera] serial names); the PLC, robot and
    F/T sensor are only named here (the drivers connect to them, under their own timeouts). Raises
    DeviceStartError (a simulated device cannot listen), RemoteSimUnavailable (the sim-service not reachable within
    [camera] request_timeout_s), CameraError (the RealSense cannot be opened), ModelError or ConfigError.
    """
    pick = cfg.cell.task == "pick"
    if cfg.cell.devices == "sim":
        s = cfg.sim
        devices = SimCellDevices(SimCellConfig(
            host=s.host, opcua_port=s.opcua_port, modbus_port=s.modbus_port, ft_port=s.ft_port,
            ft_rate_hz=s.ft_rate_hz, seed=s.seed, faults=s.faults, time_scale=s.time_scale,
        ))
        ep: Endpoints = await tg.start(devices.serve)
        perception = make_perception(cfg.perception, devices.cell)
        return CellDevices("sim", ep, perception, WorldCamera(scene_of(perception, devices.cell)),
                           SimOrders(devices) if pick else None,
                           sim=devices)
    if cfg.cell.devices == "external":
        if "camera" not in cfg.model_fields_set:  # load_config refuses this already; a config built in code too
            raise ConfigError(EXTERNAL_NEEDS_CAMERA)
        check_devices(cfg)
        cam = cfg.camera
        ep = Endpoints(cfg.plc.url, (cfg.robot.host, cfg.robot.port), (cfg.ft.host, cfg.ft.port), EXTERNAL_FT_RATE_HZ)
        if cam.kind == "realsense":
            return await _open_realsense(cfg, tg, ep, camera_device)
        remote = RemoteSim(cam.host, cam.port, request_timeout_s=cam.request_timeout_s)
        await tg.start(remote.run)
        return CellDevices("external", ep, remote, remote, remote if pick else None, remote=remote)
    raise ConfigError(f"cell.devices: {cfg.cell.devices!r} is not a kind of devices (sim, external)")


async def _open_realsense(cfg: RunConfig, tg: TaskGroup, ep: Endpoints, device: Any | None) -> CellDevices:
    """The RealSense on the EOAT, streaming in `tg`, and learned perception on its frames over the PLC's pod."""
    cam, section = cfg.camera, cfg.perception
    refs: ReferenceSource = NoCatalogue()
    if section.catalogue is not None:
        try:
            refs = CatalogueDirectory(section.catalogue)
        except CatalogueFileError as exc:
            raise ConfigError(f"perception.catalogue: {exc}") from None
    from drivers.realsense import RealSenseFrameSource  # the SDK loads with the camera that needs it

    models = load_models(section)  # ModelError before the camera opens
    source = RealSenseFrameSource(cam.realsense(), device=device)
    await tg.start(source.run)
    pod = CurrentPod()
    view = ViewingCamera(source, pod, standoff_mm=cam.standoff_mm, settle_s=cam.settle_s,
                         frame_timeout_s=cam.frame_timeout_s, max_view_age_s=cam.max_view_age_s)
    perception = LearnedPerception(pod, models, view, refs, PlannerCameraConfig(standoff_mm=cam.standoff_mm))

    def attach(cell: DriverWorkcell) -> None:
        recorder = cell.recorder

        def record(payload: dict[str, Any]) -> None:
            if recorder is not None:
                recorder.record("camera.view", anyio.current_time(), payload)

        pod.follow(lambda: cell.plc.last_pod)
        view.bind(cell.move, record)
        cell.plc.interlocks.add_tap(lambda state: None if state.clear else view.forget())

    return CellDevices("external", ep, perception, LiveFrames(source), None, camera=source, attach=attach)
