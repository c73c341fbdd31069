"""The simulated cell's devices as standalone protocol servers (`cellctl devices --sim`).

    SimCellServers  the simulated cell (the default): `SimCellDevices` (PLC, robot, F/T behind their protocols over
                    one seeded world, the same as `cellctl run` starts in-process) plus the sim-service (its EOAT
                    camera, perception and pick orders over TCP), so a controller in another process can run
                    against it (`cell.devices = "external"`)
    SimDevices      the protocol demo (--demo): the three servers with a fixed pod and timed demo arrivals, no world
"""

from __future__ import annotations

import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup, TaskStatus
from pydantic import BaseModel, ConfigDict, Field

from cellctl.config import PerceptionSection
from cellctl.workcells.sim_service import SimService
from cellctl.workcells.sources import make_perception
from drivers.plc_nodes import BinLayout
from drivers.sim.cell_devices import DeviceStartError, Endpoints, SimCellConfig, SimCellDevices, start_device
from drivers.sim.ft_sensor import SimFTConfig, SimFTSensor
from drivers.sim.plc import PlcSim, SimItem, SimPod
from drivers.sim.robot import SimRobot, SimRobotConfig

__all__ = ["DeviceStartError", "Endpoints", "Served", "SimCellConfig", "SimCellServers", "SimDevices",
           "SimDevicesConfig"]

SERVICE_DEVICE = "camera + perception (sim-service, TCP)"


@dataclass(frozen=True)
class Served:
    """What `cellctl devices --sim` serves, and where."""

    kind: Literal["cell", "demo"]
    devices: Endpoints
    service: tuple[str, int] | None  # the sim-service (None: the demo has no world to serve)
    world: dict[str, Any] | None = None  # seed, faults, time_scale of the simulated cell

    def lines(self) -> list[str]:
        out = self.devices.lines()
        if self.service is not None:
            host, port = self.service
            out.append(f"  camera  TCP (JSON lines)  {host}:{port}   EOAT camera, perception and pick orders of the "
                       "world (sim-service)")
        return out

    def config_lines(self) -> list[str]:
        """The [cell]/[plc]/[robot]/[ft]/[camera] lines that point `cellctl run` at these devices."""
        ep = self.devices
        out = ['[cell]', 'devices = "external"', '[plc]', f'url = "{ep.opcua_url}"',
               'resume_after_seq = 0  # the item already waiting at the pick-up point is announced too',
               '[robot]', f'host = "{ep.modbus[0]}"', f'port = {ep.modbus[1]}', '[ft]', f'host = "{ep.ft[0]}"',
               f'port = {ep.ft[1]}']
        if self.service is not None:
            out += ['[camera]', 'kind = "sim-service"', f'host = "{self.service[0]}"', f'port = {self.service[1]}']
        return out

    def as_json(self) -> dict[str, Any]:
        ep = self.devices
        return {"kind": self.kind, "opcua": ep.opcua_url, "modbus": list(ep.modbus), "ft": list(ep.ft),
                "ft_rate_hz": ep.ft_rate_hz, "service": list(self.service) if self.service else None,
                "world": self.world}


class SimCellServers:
    """The simulated cell behind its protocols (`SimCellDevices`) plus the sim-service over the same world."""

    def __init__(self, cell: SimCellConfig, service_port: int = 4850, *,
                 perception: Literal["learned", "oracle"] = "oracle") -> None:
        """`perception`: how the sim-service perceives (learned loads the shipped models: raises ModelError)."""
        self.config, self.service_port = cell, service_port
        self.devices = SimCellDevices(cell)
        self.service = SimService(self.devices, cell.host, service_port,
                                  perception=make_perception(PerceptionSection(mode=perception), self.devices.cell))

    async def serve(self, *, task_status: TaskStatus[Served] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the devices (the PLC first), then the sim-service; report where they listen; run until cancelled."""
        cfg = self.config
        async with anyio.create_task_group() as tg:
            ep: Endpoints = await tg.start(self.devices.serve)
            port = await start_device(tg, SERVICE_DEVICE, self.service.serve, cfg.host, self.service_port)
            world = {"seed": cfg.seed, "faults": cfg.faults, "time_scale": cfg.time_scale}
            task_status.started(Served("cell", ep, (cfg.host, port), world))


class SimDevicesConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    opcua_port: int = Field(default=4840, ge=0, le=65535)
    modbus_port: int = Field(default=5020, ge=0, le=65535)
    ft_port: int = Field(default=49152, ge=0, le=65535)
    ft_rate_hz: float = Field(default=1000.0, gt=0, le=10_000)
    arrival_period_s: float = Field(default=15.0, ge=0)  # 0: no demo arrivals
    seed: int = 0


class SimDevices:
    """The simulated PLC, robot and F/T sensor, each behind its real protocol."""

    def __init__(self, config: SimDevicesConfig | None = None) -> None:
        self.config = cfg = config or SimDevicesConfig()
        self.plc = PlcSim(cfg.host, cfg.opcua_port)
        self.robot = SimRobot(SimRobotConfig(host=cfg.host, port=cfg.modbus_port))
        self.ft = SimFTSensor(SimFTConfig(host=cfg.host, port=cfg.ft_port, rate_hz=cfg.ft_rate_hz))

    async def serve(self, *, task_status: TaskStatus[Served] = anyio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        async with anyio.create_task_group() as tg:
            await self._start(tg, "PLC (OPC UA)", self.plc.serve, cfg.opcua_port)
            modbus_port = await self._start(tg, "robot (Modbus TCP)", self.robot.serve, cfg.modbus_port)
            ft_port = await self._start(tg, "F/T sensor (UDP)", self.ft.serve, cfg.ft_port)
            await self.plc.present_pod(SimPod("POD-0001", "A", BinLayout.uniform(4, 3, 230.0, 200.0, 350.0)))
            ep = Endpoints(self.plc.url, (cfg.host, modbus_port), (cfg.host, ft_port), cfg.ft_rate_hz)
            task_status.started(Served("demo", ep, None))
            if cfg.arrival_period_s > 0:
                await self._demo_arrivals(cfg.arrival_period_s, random.Random(cfg.seed))

    async def _start(
        self, tg: TaskGroup, device: str, serve: Callable[..., Coroutine[Any, Any, None]], port: int
    ) -> Any:
        try:
            return await tg.start(serve)
        except (OSError, RuntimeError) as exc:
            raise DeviceStartError(device, self.config.host, port, exc) from exc

    async def _demo_arrivals(self, period: float, rng: random.Random) -> None:
        """An item on the conveyor every `period` seconds, so integrators see values change."""
        n = 0
        while True:
            await anyio.sleep(period)
            n += 1
            length, width, height = sorted((rng.uniform(40, 300) for _ in range(3)), reverse=True)
            await self.plc.arrive(SimItem(f"ITEM-{n:06d}", length, width, height, round(rng.uniform(0.05, 3.0), 3)))
