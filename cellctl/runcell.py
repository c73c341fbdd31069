"""`cellctl run`: the cell controller in real time over the real drivers.

With the built-in simulated cell (the default) the simulated PLC, robot and F/T sensor are served in-process
behind OPC UA, Modbus TCP and UDP on 127.0.0.1 and the controller connects to them like to a real cell;
the EOAT camera and perception run on the simulated world (the one device without a network protocol).
Every port call, reply, chart transition, command and sensor sample goes to an MCAP event log.
Ctrl-C or SIGTERM stops the cell safely (PackML Stop: the current primitive is stopped, the arm retracts,
the band hook lifts), then the log is closed; a second signal aborts (robot halted at once).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio
import structlog
from anyio.abc import TaskGroup

from drivers.ft import FTSensor
from drivers.plc import PlcClient
from drivers.robot import RobotDriver
from drivers.sim.cell import SimCell
from drivers.sim.cell_devices import Endpoints, SimCellConfig, SimCellDevices
from statecharts.workcell import PickOrder

from . import __version__
from .cellrun import CellRun, Command, TraceHasher, cell_runner, start_cell
from .config import ConfigError, RunConfig
from .drivercell import DriverWorkcell
from .eventlog import EventLog
from .logrecorder import REAL_SAMPLE_TOPICS, LogRecorder
from .recording import COMMAND, RecordingWorkcell
from .reflex import tune_interpreter_for_reflex
from .sensorlog import SensorLog
from .worldperception import WorldPerception

log = structlog.get_logger("run")
MiB = 1024 * 1024
CONNECT_TIMEOUT_S = 15.0


class WorldCamera:
    """The EOAT camera of the simulated cell: noisy depth frames rendered from its world."""

    def __init__(self, perception: WorldPerception) -> None:
        self.perception = perception
        self.noise_k = perception.camera.noise_k

    def frame(self, bin_index: int) -> Any:
        p = self.perception
        return p.noisy(p.render(p.cell.bin(bin_index), band=False)[0])


class SimOrders:
    """The FC's pick orders in the simulated cell (the FC order interface is not on OPC UA yet)."""

    def __init__(self, devices: SimCellDevices) -> None:
        self.devices = devices

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        cell: SimCell = self.devices.cell
        order, down_s = cell.next_order()
        await self.devices.present_pod()  # the order may have rotated the pod
        if order is None or down_s > timeout_s:
            await anyio.sleep(timeout_s)
            return None
        await anyio.sleep(0.5 + down_s)
        return PickOrder(order_id=order.order_id, item_id=str(order.item_id), bin_id=order.bin_id)


@dataclass
class RunStatus:
    """What the status line shows."""

    task: str
    log_path: Path
    started: float = field(default_factory=time.monotonic)
    run: CellRun | None = None
    stopping: str = ""
    stop_requested: bool = False

    def line(self) -> str:
        if self.run is None:
            return f"cellctl run · {self.task} · connecting{self.stopping}"
        d = self.run.data
        c = {k: d.counts.get(k, 0) for k in ("done", "handoff", "fault")}
        hours = (time.monotonic() - self.started) / 3600.0
        uph = c["done"] / hours if hours > 0 else 0.0
        return (f"cellctl run · {self.task} · {self.run.state()} · cycle {d.cycles} · done {c['done']} "
                f"handoff {c['handoff']} fault {c['fault']} · {uph:.0f} units/h{self.stopping}")


async def _status_loop(status: RunStatus, period_s: float, out: TextIO) -> None:
    """On a terminal, one line rewritten in place; otherwise a log line per finished cycle (and every 10 s)."""
    tty = out.isatty()
    last_log, last_cycle = 0.0, -1
    while True:
        if tty:
            out.write("\r\x1b[2K" + status.line())
            out.flush()
        else:
            cycle = status.run.data.cycles if status.run is not None else -1
            if cycle != last_cycle or time.monotonic() - last_log >= 10.0:
                last_log, last_cycle = time.monotonic(), cycle
                log.info("status", line=status.line())
        await anyio.sleep(period_s)


async def _on_signals(run_status: RunStatus, tg: TaskGroup, stop_timeout_s: float) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        n = 0
        async for sig in signals:
            n += 1
            run = run_status.run
            name = signal.Signals(sig).name
            if run is None:
                tg.cancel_scope.cancel()
                return
            if n == 1:
                log.info("stop requested: stopping the cell safely", signal=name)
                run_status.stop_requested = True
                run_status.stopping = " · stopping (Ctrl-C again to abort)"
                tg.start_soon(run.command, Command("cmd.stop"))
                tg.start_soon(_abort_after, run, run_status, stop_timeout_s)
            else:
                log.warning("second signal: aborting (robot halted now)", signal=name)
                run_status.stopping = " · aborting"
                tg.start_soon(run.command, Command("cmd.abort"))


async def _abort_after(run: CellRun, status: RunStatus, timeout_s: float) -> None:
    """A safe stop that does not finish in time becomes an abort (the robot is halted where it is)."""
    with anyio.move_on_after(timeout_s):
        await run.wait_any(("stopped", "aborted"))
        return
    log.error("safe stop did not finish in time: aborting", timeout_s=timeout_s)
    status.stopping = " · aborting (stop timed out)"
    await run.command(Command("cmd.abort"))


def _log_path(cfg: RunConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return cfg.log.dir / f"cellctl-run-{cfg.cell.task}-{stamp}.mcap"


async def run_cell(cfg: RunConfig, *, out: TextIO = sys.stderr,
                   on_ready: Callable[[CellRun], None] | None = None) -> dict[str, Any]:
    """Run the cell until it completes its cycles or is stopped; the summary (also in the log)."""
    if cfg.cell.devices != "sim":
        raise ConfigError("cell.devices = 'real' needs an EOAT camera driver and its perception service, which this "
                          "version does not have; use devices = 'sim'")
    tune_interpreter_for_reflex()
    path = _log_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    event_log = EventLog.open(path, rotate_bytes=int(cfg.log.rotate_mb * MiB), flush_s=cfg.log.flush_s)
    status = RunStatus(cfg.cell.task, path)
    recorder = LogRecorder(event_log, REAL_SAMPLE_TOPICS)
    hasher = TraceHasher()
    end = "not started"
    data = None
    try:
        # Devices in the outer group, the controller in the inner one: the controller shuts down first.
        async with anyio.create_task_group() as devices_tg:
            s = cfg.sim
            devices = SimCellDevices(SimCellConfig(
                host=s.host, opcua_port=s.opcua_port, modbus_port=s.modbus_port, ft_port=s.ft_port,
                ft_rate_hz=s.ft_rate_hz, seed=s.seed, faults=s.faults, time_scale=s.time_scale,
            ))
            ep = await devices_tg.start(devices.serve)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_status_loop, status, cfg.cell.status_period_s, out)
                tg.start_soon(_on_signals, status, tg, cfg.cell.stop_timeout_s)
                cell = await _connect(tg, cfg, ep, devices, recorder)
                recorder.record("run.meta", anyio.current_time(), {
                    "mode": "run", "task": cfg.cell.task, "cycles": cfg.cell.cycles or None, "seed": s.seed,
                    "faults": s.faults, "cellctl": __version__, "endpoints": {
                        "opcua": ep.opcua_url, "modbus": list(ep.modbus), "ft": list(ep.ft)}})
                port = RecordingWorkcell(cell, recorder)
                runner, data = cell_runner(port, task=cfg.cell.task, max_cycles=cfg.cell.cycles or None,
                                           hooks=[hasher, port.trace])

                def logged(cmd: Command) -> None:
                    payload = {"command": cmd.name, "after_state": cmd.after_state}
                    recorder.record(COMMAND, anyio.current_time(), payload)

                run = await start_cell(tg, runner, data, logged)
                status.run = run
                log.info("cell running", task=cfg.cell.task, log=str(path), opcua=ep.opcua_url,
                         modbus=f"{ep.modbus[0]}:{ep.modbus[1]}", ft=f"{ep.ft[0]}:{ep.ft[1]}")
                if on_ready is not None:
                    on_ready(run)
                await run.command(Command("cmd.reset"))
                # Tripped interlocks abort from reset on; a stop may come before the cell is idle.
                if await run.wait_any(("idle", "aborted")) == "idle" and not status.stop_requested:
                    await run.command(Command("cmd.start", after_state="idle"))
                elif status.stop_requested:
                    await run.command(Command("cmd.stop"))
                end = await run.wait_end()
                tg.cancel_scope.cancel()
            devices_tg.cancel_scope.cancel()
    finally:
        if out.isatty():
            out.write("\n")
        summary = _summary(cfg, end, data, hasher, path)
        recorder.record("run.end", anyio.current_time(), summary)
        event_log.close()
    log.info("run ended", **{k: v for k, v in summary.items() if k != "outcomes"}, **summary["outcomes"])
    return summary


async def _connect(tg: TaskGroup, cfg: RunConfig, ep: Endpoints, devices: SimCellDevices,
                   recorder: LogRecorder) -> DriverWorkcell:
    """Start the drivers, the sensor log and the reflex against `ep`; return once PLC, robot and pod are up."""
    plc = PlcClient(cfg.plc.model_copy(update={"url": ep.opcua_url, "resume_after_seq": 0}))
    robot = RobotDriver(cfg.robot.model_copy(update={"host": ep.modbus[0], "port": ep.modbus[1]}))
    ft = FTSensor(cfg.ft.model_copy(update={"host": ep.ft[0], "port": ep.ft[1]}))
    perception = WorldPerception(devices.cell)
    orders = SimOrders(devices) if cfg.cell.task == "pick" else None
    cell = DriverWorkcell(plc=plc, robot=robot, ft=ft, perception=perception, frames=WorldCamera(perception),
                          orders=orders, recorder=recorder)
    sensors = SensorLog(recorder, ft=ft, robot=robot, plc=plc, ft_rate_hz=ep.ft_rate_hz)
    for task in (plc.run, robot.run, ft.run, sensors.run, cell.run):
        await tg.start(task)
    waiting = f"the PLC at {ep.opcua_url}"
    try:
        with anyio.fail_after(CONNECT_TIMEOUT_S):
            await plc.wait_connected()
            waiting = f"the robot at {ep.modbus[0]}:{ep.modbus[1]}"
            await robot.wait_ready()
            waiting = "the PLC's pod and interlock values"
            with plc.pod.subscription() as pods, plc.interlocks.subscription() as locks:
                if plc.last_pod is None:
                    await pods.receive()
                if plc.last_interlocks is None:
                    await locks.receive()
    except TimeoutError:
        raise TimeoutError(f"no answer from {waiting} within {CONNECT_TIMEOUT_S:.0f} s") from None
    return cell


def _summary(cfg: RunConfig, end: str, data: Any, hasher: TraceHasher, path: Path) -> dict[str, Any]:
    counts = data.counts if data is not None else {}
    return {
        "task": cfg.cell.task, "end_state": end, "cycles": data.cycles if data is not None else 0,
        "outcomes": {k: counts.get(k, 0) for k in ("done", "handoff", "fault")},
        "transitions": hasher.transitions, "log": str(path),
    }
