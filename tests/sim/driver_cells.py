"""A DriverWorkcell over the real drivers against the simulated cell's devices on loopback (shared by tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from cellctl.runtime.reflex_process import ReflexConfig, ReflexProcess
from cellctl.workcells.drivers import DriverWorkcell
from cellctl.workcells.sim_perception import WorldPerception
from cellctl.workcells.sim_sources import WorldCamera
from drivers.ft import FTConfig, FTSensor, StreamState
from drivers.plc import BackoffConfig, PlcClient, PlcConfig
from drivers.robot import RobotConfig, RobotDriver
from drivers.sim.cell_devices import SimCellConfig, SimCellDevices
from statecharts.workcell import Motion, Primitive

WAIT_S = 10.0


@dataclass
class Cell:
    devices: SimCellDevices
    port: DriverWorkcell
    ft: FTSensor
    plc: PlcClient
    modbus_port: int


@asynccontextmanager
async def driver_cell(*, reflex_process: bool = False) -> AsyncIterator[Cell]:
    """`reflex_process`: the force reflex in its own process (as `cellctl run`), else the in-loop guard."""
    devices = SimCellDevices(SimCellConfig(opcua_port=0, modbus_port=0, ft_port=0, seed=2, time_scale=0.05))
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(WAIT_S):
            ep = await tg.start(devices.serve)
            plc = PlcClient(PlcConfig(url=ep.opcua_url, publishing_interval_ms=20.0, resume_after_seq=0,
                                      backoff=BackoffConfig(initial_s=0.05, max_s=0.4, jitter_s=0.02)))
            robot = RobotDriver(RobotConfig(port=ep.modbus[1], reconnect_initial_s=0.02))
            ft_config = FTConfig(host="127.0.0.1", port=ep.ft[1], bind_host="127.0.0.1")
            reflex = None
            if reflex_process:
                reflex = ReflexProcess(ReflexConfig.from_drivers(ft_config, robot.config))
                await tg.start(reflex.run)
                ft_config = ft_config.model_copy(update={"host": reflex.relay[0], "port": reflex.relay[1]})
            ft = FTSensor(ft_config)
            perception = WorldPerception(devices.cell)
            port = DriverWorkcell(plc=plc, robot=robot, ft=ft, perception=perception, frames=WorldCamera(perception),
                                  reflex=reflex)
            for task in (plc.run, robot.run, ft.run, port.run):
                await tg.start(task)
            await plc.wait_connected()
            await robot.wait_ready()
            with ft.status.subscription() as sub:
                while ft.state is not StreamState.LIVE:
                    await sub.receive()
            with plc.pod.subscription() as pods:
                if plc.last_pod is None:
                    await pods.receive()
            if reflex is not None:
                await reflex.wait_can_guard()
        yield Cell(devices, port, ft, plc, ep.modbus[1])
        tg.cancel_scope.cancel()


def approach(limit_n: float | None) -> Motion:
    return Motion(primitive=Primitive.APPROACH, params={"bin": 0.0, "x": 20.0, "y": 0.0}, timeout_s=5.0,
                  force_limit_n=limit_n, backoff_mm=20.0)
