"""The simulated cell's devices as standalone protocol servers (`cellctl devices --sim`)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from pydantic import BaseModel, ConfigDict, Field

from drivers.plc_nodes import BinLayout
from drivers.sim.cell_devices import DeviceStartError, Endpoints
from drivers.sim.ft_sensor import SimFTConfig, SimFTSensor
from drivers.sim.plc import PlcSim, SimItem, SimPod
from drivers.sim.robot import SimRobot, SimRobotConfig

__all__ = ["DeviceStartError", "Endpoints", "SimDevices", "SimDevicesConfig"]


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

    async def serve(self, *, task_status: TaskStatus[Endpoints] = anyio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        async with anyio.create_task_group() as tg:
            await self._start(tg, "PLC (OPC UA)", self.plc.serve, cfg.opcua_port)
            modbus_port = await self._start(tg, "robot (Modbus TCP)", self.robot.serve, cfg.modbus_port)
            ft_port = await self._start(tg, "F/T sensor (UDP)", self.ft.serve, cfg.ft_port)
            await self.plc.present_pod(SimPod("POD-0001", "A", BinLayout.uniform(4, 3, 230.0, 200.0, 350.0)))
            task_status.started(Endpoints(self.plc.url, (cfg.host, modbus_port), (cfg.host, ft_port), cfg.ft_rate_hz))
            if cfg.arrival_period_s > 0:
                await self._demo_arrivals(cfg.arrival_period_s, random.Random(cfg.seed))

    async def _start(self, tg: TaskGroup, device: str, serve: Callable[..., Awaitable[None]], port: int) -> Any:
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
            dims = sorted((rng.uniform(40, 300) for _ in range(3)), reverse=True)
            await self.plc.arrive(SimItem(f"ITEM-{n:06d}", *dims, round(rng.uniform(0.05, 3.0), 3)))
