"""Where a run's devices are: the built-in simulated cell in this process, or external devices at endpoints.

`open_devices(cfg, tg)` gives `cellctl run` everything the driver workcell needs besides the drivers themselves:
the endpoints the drivers connect to, the EOAT camera with its perception, and (for pick runs) the pick orders.

    devices = "sim"       SimCellDevices starts in `tg`: PLC (OPC UA), robot (Modbus TCP), F/T (UDP) servers on
                          127.0.0.1 over one seeded world ([sim]); camera, perception and orders read that world
                          in this process (WorldCamera, WorldPerception, SimOrders).
    devices = "external"  the endpoints of [plc] url, [robot] host/port, [ft] host/port; the camera, perception
                          and orders of [camera] (kind = "sim-service": RemoteSim, connected in `tg`, to the
                          world `cellctl devices --sim` serves in another process). kind = "realsense" is
                          refused (`check_devices`): learned perception on a real camera's frames also needs the
                          pod's bin layout and the FC's product images, which only the simulated cell gives yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anyio.abc import TaskGroup

from cellctl.config import EXTERNAL_NEEDS_CAMERA, ConfigError, PerceptionSection, RunConfig
from cellctl.workcells.drivers import FrameSource, OrderSource, Perception
from cellctl.workcells.learned_models import load_models
from cellctl.workcells.planning_perception import PlanningPerception
from cellctl.workcells.remote_sim import RemoteSim
from cellctl.workcells.sim_frames import sim_learned_perception
from cellctl.workcells.sim_perception import WorldPerception, scene_of
from cellctl.workcells.sim_sources import SimOrders, WorldCamera
from drivers.sim.cell import SimCell
from drivers.sim.cell_devices import Endpoints, SimCellConfig, SimCellDevices

__all__ = ["EXTERNAL_FT_RATE_HZ", "REALSENSE_NEEDS_LEARNED_PERCEPTION", "CellDevices", "Endpoints", "check_devices",
           "make_perception", "open_devices"]

# The F/T stream rate assumed for external devices (the event log's batch rate; the reflex is built for 1 kHz,
# an ATI Net F/T's RDT default and `cellctl devices --sim`'s).
EXTERNAL_FT_RATE_HZ = 1000.0

REALSENSE_NEEDS_LEARNED_PERCEPTION = (
    "camera.kind: 'realsense' gives camera frames only; learned perception runs on frames today only in the simulated "
    "cell (devices = 'sim', or the sim-service), which also gives it the pod's bin layout and the FC's product images: "
    "a real camera's run needs both from the FC first (not built yet): use kind = 'sim-service' with "
    "`cellctl devices --sim`")


def check_devices(cfg: RunConfig) -> None:
    """Refuse, with one line (ConfigError), devices this run could not use: before anything starts."""
    if cfg.cell.devices == "external" and cfg.camera.kind == "realsense":
        raise ConfigError(REALSENSE_NEEDS_LEARNED_PERCEPTION)


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

    def describe(self) -> dict[str, Any]:
        """For the log: every endpoint and where camera, perception and orders come from."""
        ep = self.endpoints
        out: dict[str, Any] = {"devices": self.kind, "opcua": ep.opcua_url, "modbus": f"{ep.modbus[0]}:{ep.modbus[1]}",
                               "ft": f"{ep.ft[0]}:{ep.ft[1]}", "ft_rate_hz": ep.ft_rate_hz}
        if self.remote is not None:
            out["camera"] = f"sim-service {self.remote.host}:{self.remote.port}"
        else:
            out["camera"] = "simulated world (in process)"
        out["orders"] = "none (stow)" if self.orders is None else out["camera"]
        out["perception"] = getattr(self.perception, "kind", "sim-service")
        return out


def make_perception(section: PerceptionSection, cell: SimCell) -> PlanningPerception:
    """The simulated cell's perception: learned (the models on its camera's frames; raises ModelError) or the
    oracle (the renderer's labels)."""
    if section.mode == "oracle":
        return WorldPerception(cell)
    return sim_learned_perception(cell, load_models(section))


async def open_devices(cfg: RunConfig, tg: TaskGroup) -> CellDevices:
    """Start (sim) or connect to (external) the run's devices in `tg`; return once they are served or connected.

    sim: the simulated devices listen when this returns. external: the camera service has answered; the PLC,
    robot and F/T sensor are only named here (the drivers connect to them, under their own timeouts). Raises
    DeviceStartError (a simulated device cannot listen), RemoteSimUnavailable (the sim-service not reachable within
    [camera] request_timeout_s) or ConfigError.
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
        remote = RemoteSim(cam.host, cam.port, request_timeout_s=cam.request_timeout_s)
        await tg.start(remote.run)
        ep = Endpoints(cfg.plc.url, (cfg.robot.host, cfg.robot.port), (cfg.ft.host, cfg.ft.port), EXTERNAL_FT_RATE_HZ)
        return CellDevices("external", ep, remote, remote, remote if pick else None, remote=remote)
    raise ConfigError(f"cell.devices: {cfg.cell.devices!r} is not a kind of devices (sim, external)")
