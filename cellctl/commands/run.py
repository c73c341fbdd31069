"""`cellctl run`: the cell controller in real time over the real drivers, serving the FC over OPC UA.

With the built-in simulated cell (`[cell] devices = "sim"`, the default) the simulated PLC, robot and F/T sensor
are served in-process behind OPC UA, Modbus TCP and UDP on 127.0.0.1 and the controller connects to them like to a
real cell; with `devices = "external"` it connects to the configured endpoints (`cellctl devices --sim` serves a
simulated cell there). Every port call, reply, chart transition, command and sensor sample goes to an MCAP event
log; every report goes first to the durable outbox (`fc.store`), then to the log and the FC. Ctrl-C or SIGTERM
stops the cell safely (PackML Stop: the current primitive is stopped, the arm retracts, the band hook lifts), then
the log is closed; a second signal aborts (robot halted at once) when it is a terminal's second Ctrl-C or comes a
grace period after the first (`runtime.signals`). A log disk that fails stops the cell the same safe way. A run
that finds tasks the last one left unfinished (a crash) settles them once the devices answer (a handoff for each item
the conveyor had handed over, nothing for one still at its pick-up point) and waits in Aborted for Clear and Reset
(`fc.recovery`).

The wiring (this module is the one place that puts the parts together)::

    RunConfig ─► open_devices (workcells.sources) ─► Endpoints, perception + camera, the world's orders
                     │  sim: SimCellDevices in this process; external: [plc] [robot] [ft] [camera] endpoints
                     ▼
    ReflexProcess (own process: F/T in, HALT out) ──relay──► FTSensor ─┐
    PlcClient (OPC UA) ── RobotDriver (Modbus TCP) ────────────────────┤   CellStore (SQLite: outbox,
    perception + camera ───────────────────────────────────────────────┤     pick requests, task journal)
    FcOrders (the FC's pick requests, from the store) ─────────────────┤      ▲      ▲        │ recover()
                                                                       ▼      │      │        ▼ at start
                  DriverWorkcell ─► RecordingWorkcell ─► ReportingWorkcell ─► CellRun (cell chart) ◄─┐
                       │ on_item: journal       │              │ commit, then   ▲                    │
                       ▼                        ▼              ▼ notify         │ commands           │
          SensorLog ─► LogRecorder (EventLog, MCAP)     FcServer (OPC UA, PackML) ──── ChartControl ──┘
                                                              ▲  events, methods
                         signals ─► Stopper ─► commands       └── the FC (SimFc: the simulated cell's)
"""

from __future__ import annotations

import asyncio
import errno
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio
import structlog
from anyio.abc import TaskGroup

from cellctl import __version__
from cellctl.config import RunConfig
from cellctl.eventlog import EventLog
from cellctl.eventlog.recorder import REAL_SAMPLE_TOPICS, LogRecorder
from cellctl.eventlog.sensors import SensorLog
from cellctl.fc.control import ChartControl
from cellctl.fc.recovery import AT_PICKUP, AT_PICKUP_NODE, Pickup, Recovery, recover
from cellctl.fc.reporting import FcOrders, ReportingWorkcell, StowJournal
from cellctl.fc.server import FcServer
from cellctl.fc.simclient import SimFc
from cellctl.fc.store import CellStore, OutboxEntry
from cellctl.runtime.cell import CellRun, Command, TraceHasher, cell_runner, start_cell
from cellctl.runtime.reflex import tune_interpreter_for_reflex
from cellctl.runtime.reflex_process import ReflexConfig, ReflexProcess
from cellctl.runtime.signals import SignalListener, StopPolicy, StopSignal
from cellctl.workcells.drivers import DriverWorkcell
from cellctl.workcells.recording import COMMAND, RecordingWorkcell
from cellctl.workcells.sources import CellDevices, Endpoints, check_devices, open_devices
from drivers.ft import FTSensor
from drivers.plc import PlcClient
from drivers.robot import RobotDriver
from drivers.robot_map import Status
from statecharts import cell as cell_chart

log = structlog.get_logger("run")
MiB = 1024 * 1024
CONNECT_TIMEOUT_S = 15.0
INCIDENTS_PERIOD_S = 5.0
SETTLE_TIMEOUT_S = 10.0  # after a crash: the robot halts its primitive by itself (our heartbeat stopped)


@dataclass
class RunStatus:
    """What the status line shows."""

    task: str
    log_path: Path
    started: float = field(default_factory=time.monotonic)
    run: CellRun | None = None
    stopping: str = ""
    stop_requested: bool = False
    fc_url: str = ""
    end: str = ""  # the end state, once the cell rests in one

    def line(self) -> str:
        if self.run is None:
            return f"cellctl run · {self.task} · connecting{self.stopping}"
        d = self.run.data
        c = {k: d.counts.get(k, 0) for k in ("done", "handoff", "fault")}
        hours = (time.monotonic() - self.started) / 3600.0
        uph = c["done"] / hours if hours > 0 else 0.0
        alarm = f" · ALARM: {d.alarm}" if d.alarm else ""
        return (f"cellctl run · {self.task} · {self.end or self.run.state()} · cycle {d.cycles} · done {c['done']} "
                f"handoff {c['handoff']} fault {c['fault']} · {uph:.0f} units/h{alarm}{self.stopping}")


async def _status_loop(status: RunStatus, period_s: float, out: TextIO) -> None:
    """On a terminal, one line rewritten in place; otherwise a log line per finished cycle (and every 10 s)."""
    tty = out.isatty()
    last_log, last_cycle, last_alarm = 0.0, -1, ""
    while True:
        if tty:
            out.write("\r\x1b[2K" + status.line())
            out.flush()
        else:
            run = status.run
            cycle = run.data.cycles if run is not None else -1
            alarm = run.data.alarm if run is not None else ""
            if cycle != last_cycle or alarm != last_alarm or time.monotonic() - last_log >= 10.0:
                last_log, last_cycle = time.monotonic(), cycle
                log.info("status", line=status.line())
            if alarm and alarm != last_alarm:
                log.error("cell held with an alarm: an operator must acknowledge it (unhold)", alarm=alarm)
            last_alarm = alarm
        await anyio.sleep(period_s)


def _final_status(status: RunStatus, out: TextIO) -> None:
    status.stopping = ""
    if out.isatty():
        out.write("\r\x1b[2K" + status.line() + "\n")
        out.flush()
    elif status.run is not None:
        log.info("status", line=status.line())


class Stopper:
    """Turns stop requests (signals, a failed log disk) into PackML commands, or cancels a start-up."""

    def __init__(self, status: RunStatus, startup: anyio.CancelScope, tg: TaskGroup, stop_timeout_s: float) -> None:
        self.status, self.startup, self.tg, self.stop_timeout_s = status, startup, tg, stop_timeout_s
        self.policy = StopPolicy()
        self.reason = ""

    def on_signal(self, sig: StopSignal) -> None:
        decision = self.policy.decide(sig)
        if decision == "ignore":
            log.info("the same stop again: ignored (a second signal aborts after "
                     f"{self.policy.grace_s:.0f} s, or a second Ctrl-C)", signal=sig.describe())
        elif decision == "stop":
            self.stop(f"{sig.name} received", how="Ctrl-C again to abort")
        else:
            self.abort(f"second signal ({sig.describe()})")

    def stop(self, reason: str, how: str = "") -> None:
        if self.status.stop_requested:
            return
        self.reason = reason
        self.status.stop_requested = True
        run = self.status.run
        if run is None:  # nothing moves yet: stop starting
            log.info("stop requested before the cell was running: closing", reason=reason)
            self.startup.cancel()
            return
        log.info("stop requested: stopping the cell safely", reason=reason)
        self.status.stopping = " · stopping" + (f" ({how})" if how else "")
        self.tg.start_soon(run.command, Command("cmd.stop"))
        self.tg.start_soon(self._abort_after, run)

    def abort(self, reason: str) -> None:
        run = self.status.run
        if run is None:
            self.stop(reason)
            return
        log.warning("aborting (robot halted now)", reason=reason)
        self.status.stopping = " · aborting"
        self.tg.start_soon(run.command, Command("cmd.abort"))

    async def _abort_after(self, run: CellRun) -> None:
        """A safe stop that does not finish in time becomes an abort (the robot is halted where it is)."""
        with anyio.move_on_after(self.stop_timeout_s):
            await run.wait_any(("stopped", "aborted"))
            return
        log.error("safe stop did not finish in time: aborting", timeout_s=self.stop_timeout_s)
        self.status.stopping = " · aborting (stop timed out)"
        await run.command(Command("cmd.abort"))


async def _watch_signals(stopper: Stopper, listener: SignalListener | None) -> None:
    if listener is None:  # in-process (tests): taken on the loop, sender unknown
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signo in signals:
                stopper.on_signal(StopSignal(signo, -1, -1, time.monotonic()))
        return
    listener.attach(stopper.on_signal)  # the process's own listener: it knows who sent each signal
    try:
        await anyio.sleep_forever()
    finally:
        listener.detach()


async def _watch_log(event_log: EventLog, failed: anyio.Event, stopper: Stopper) -> None:
    await failed.wait()
    exc = event_log.failed
    log.error("event log failed: stopping the cell safely", error=_disk_error(exc) if exc else "?")
    stopper.stop("the event log's disk failed")


def _disk_error(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"event log {exc.filename}: {exc.strerror or exc} ({code})"


async def _log_incidents(recorder: LogRecorder, sources: dict[str, Callable[[], dict[str, int]]],
                         period_s: float) -> None:
    """Driver incidents (bad datagrams, foreign sources, Modbus exceptions, stale streams) into the log."""
    last: dict[str, dict[str, int]] = {}
    try:
        while True:
            await anyio.sleep(period_s)
            last = _write_incidents(recorder, sources, last)
    finally:
        _write_incidents(recorder, sources, last)


def _write_incidents(recorder: LogRecorder, sources: dict[str, Callable[[], dict[str, int]]],
                     last: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    now = {name: snapshot() for name, snapshot in sources.items()}
    if now != last:
        recorder.record("driver.incidents", anyio.current_time(), now)
    return now


def _log_path(cfg: RunConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return cfg.log.dir / f"cellctl-run-{cfg.cell.task}-{stamp}.mcap"


def _meta(cfg: RunConfig, store: CellStore) -> dict[str, Any]:
    s = cfg.sim
    return {"mode": "run", "task": cfg.cell.task, "cycles": cfg.cell.cycles or None, "seed": s.seed,
            "faults": s.faults, "cellctl": __version__, "task_prefix": _task_prefix(store), "boot": store.boot,
            "store": str(store.path)}


def _task_prefix(store: CellStore) -> str:
    return f"r{store.boot}-"  # the store's boot count: task ids stay unique across restarts


def _store_path(cfg: RunConfig) -> Path:
    """`[fc] store` when given, else beside the event logs."""
    return cfg.fc.store if "store" in cfg.fc.model_fields_set else cfg.log.dir / "cellctl-fc.sqlite"


class _WakingStore:
    """The store as the FC server uses it (`fc.server.ReportStore`): a pick request added wakes the order source."""

    def __init__(self, store: CellStore, orders: FcOrders | None) -> None:
        self._store, self._orders = store, orders

    def pending(self, limit: int | None = None) -> list[OutboxEntry]:
        return self._store.pending(limit)

    def pending_count(self) -> int:
        return self._store.pending_count()

    def ack(self, report_ids: Iterable[int]) -> int:
        return self._store.ack(report_ids)

    def mark_delivered(self, report_id: int) -> None:
        self._store.mark_delivered(report_id)

    def add_request(self, item_id: str, product_id: str, pod: str, bin_id: str, *,
                    reference_image_ids: Sequence[str] = ()) -> str:
        task_id = self._store.add_request(item_id, product_id, pod, bin_id, reference_image_ids=reference_image_ids)
        if self._orders is not None:
            self._orders.wake_threadsafe()
        return task_id


async def run_cell(cfg: RunConfig, *, out: TextIO = sys.stderr, on_ready: Callable[[CellRun], None] | None = None,
                   signals: SignalListener | None = None, on_fc: Callable[[str], None] | None = None,
                   camera_device: Any | None = None) -> dict[str, Any]:
    """Run the cell until it completes its cycles or is stopped; the summary (also in the log).

    `camera_device`: the RealSense device to open instead of finding [camera] serial (the SDK's software device
    in the tests: `drivers.sim.realsense_device`).

    `signals`: the process's `SignalListener` (cellctl run installs one first thing); without it SIGINT and
    SIGTERM are taken on the event loop. A summary with an "error" key means the run had to stop on a fault
    of its own (the log's disk): `cellctl run` prints it and exits 2.
    """
    check_devices(cfg)  # a camera this run cannot use: refused before a log or store is made
    tune_interpreter_for_reflex()
    path = _log_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    store = CellStore.open(_store_path(cfg), capacity=cfg.fc.outbox_capacity, max_requests=cfg.fc.max_requests)
    try:
        return await _run_with_store(cfg, store, path, out, on_ready, signals, on_fc, camera_device)
    finally:
        store.close()


async def _run_with_store(cfg: RunConfig, store: CellStore, path: Path, out: TextIO,
                          on_ready: Callable[[CellRun], None] | None, signals: SignalListener | None,
                          on_fc: Callable[[str], None] | None, camera_device: Any | None = None) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    log_failed = anyio.Event()
    event_log = EventLog.open(path, rotate_bytes=int(cfg.log.rotate_mb * MiB), flush_s=cfg.log.flush_s,
                              on_failure=lambda _exc: loop.call_soon_threadsafe(log_failed.set))
    status = RunStatus(cfg.cell.task, path)
    recorder = LogRecorder(event_log, REAL_SAMPLE_TOPICS)
    recorder.record("run.meta", anyio.current_time(), _meta(cfg, store))  # first: a log stopped at once still opens
    recovered: list[Recovery] = []  # what recovery settled, once the devices answer (`_run`)
    hasher = TraceHasher()
    end = "not started"
    data = None
    cell: DriverWorkcell | None = None
    stopper: Stopper | None = None
    try:
        async with anyio.create_task_group() as sup:
            startup = anyio.CancelScope()
            stopper = Stopper(status, startup, sup, cfg.cell.stop_timeout_s)
            sup.start_soon(_watch_signals, stopper, signals)
            sup.start_soon(_watch_log, event_log, log_failed, stopper)
            with startup:
                end, data, cell = await _run(cfg, recorder, status, hasher, sup, out, on_ready, store, recovered,
                                             on_fc, camera_device)
            sup.cancel_scope.cancel()
    finally:
        _final_status(status, out)  # the counts once the last report (a stop's interrupted one too) is in
        summary = _summary(cfg, end, data, hasher, path, cell, event_log)
        summary["fc"] = {"url": status.fc_url, "boot": store.boot, **store.counts(), "duplicates": store.duplicates,
                         "recovered": [h["task_id"] for r in recovered for h in r.handoffs]}
        if stopper is not None and stopper.reason and end == "not started":
            summary["stopped_before_start"] = stopper.reason
        try:
            recorder.record("run.end", anyio.current_time(), summary)
        finally:
            event_log.close()
        if event_log.failed is not None:
            summary["error"] = _disk_error(event_log.failed)
            summary["log_records_lost"] = event_log.records_lost
    log.info("run ended", **{k: v for k, v in summary.items() if k not in ("outcomes", "incidents", "fc")},
             **summary["outcomes"])
    return summary


async def _run(cfg: RunConfig, recorder: LogRecorder, status: RunStatus, hasher: TraceHasher, sup: TaskGroup,
               out: TextIO, on_ready: Callable[[CellRun], None] | None, store: CellStore,
               recovered: list[Recovery], on_fc: Callable[[str], None] | None, camera_device: Any | None = None,
               ) -> tuple[str, cell_chart.CellData | None, DriverWorkcell | None]:
    c = cfg.cell
    orders = FcOrders(store) if c.task == "pick" else None
    server = FcServer(cfg.fc, None, _WakingStore(store, orders))  # the cell is attached once it runs
    await server.prepare()  # seconds of CPU on this loop: before any device link has a deadline to keep
    if c.task == "pick":
        # Suction patches and the FC's images need open3d; imported in perception's worker thread at the first
        # pick it would hold the interpreter for seconds and the robot link's heartbeat would lapse.
        import open3d  # noqa: F401
    # Devices in the outer group, the controller in the inner one: the controller shuts down first.
    async with anyio.create_task_group() as devices_tg:
        devices = await open_devices(cfg, devices_tg, camera_device=camera_device)
        ep = devices.endpoints
        async with anyio.create_task_group() as tg:
            tg.start_soon(_status_loop, status, cfg.cell.status_period_s, out)
            cell = await _connect(tg, cfg, ep, devices, recorder, orders)
            recovery = await _recover(cfg, store, cell, status.log_path, recorder)
            recovered.append(recovery)
            tg.start_soon(_log_incidents, recorder, _incident_sources(cell), INCIDENTS_PERIOD_S)
            recorder.record("run.devices", anyio.current_time(), {"endpoints": {
                "opcua": ep.opcua_url, "modbus": list(ep.modbus), "ft": list(ep.ft)}, **devices.describe()})
            recording = RecordingWorkcell(cell, recorder)
            data_box: list[cell_chart.CellData] = []

            def current_task() -> str:
                return data_box[0].current_task if data_box else ""

            cell.on_item = StowJournal(store, current_task).begin
            server_box: list[FcServer] = []  # holds `server` once it serves

            def committed(entry: OutboxEntry) -> None:
                recorder.record("fc.report", anyio.current_time(), {"report_id": entry.report_id,
                                                                    "task_id": entry.task_id, "kind": entry.kind})
                if server_box:
                    server_box[0].notify_report(entry)

            run_box: list[CellRun] = []
            port = ReportingWorkcell(recording, store, current_task=current_task, on_committed=committed,
                                     on_full=lambda text: _alarm(run_box, tg, text))
            repeat = cell_chart.FaultRepeat(c.fault_repeat_limit, c.fault_repeat_window_s) \
                if c.fault_repeat_limit else None
            runner, data = cell_runner(port, task=c.task, max_cycles=c.cycles or None,
                                       hooks=[hasher, recording.trace], fault_repeat=repeat,
                                       task_prefix=_task_prefix(store))
            data_box.append(data)

            def logged(cmd: Command) -> None:
                payload = {"command": cmd.name, "after_state": cmd.after_state, "data": cmd.data}
                recorder.record(COMMAND, anyio.current_time(), payload)

            run = await start_cell(tg, runner, data, logged)
            run_box.append(run)
            server.control = ChartControl.of(run)
            status.fc_url = await tg.start(server.run)
            server_box.append(server)
            status.run = run
            log.info("cell running", task=c.task, log=str(status.log_path), fc=status.fc_url, opcua=ep.opcua_url,
                     modbus=f"{ep.modbus[0]}:{ep.modbus[1]}", ft=f"{ep.ft[0]}:{ep.ft[1]}", boot=store.boot)
            recorder.record("fc.server", anyio.current_time(), {"url": status.fc_url})
            if on_fc is not None:
                on_fc(status.fc_url)
            async with anyio.create_task_group() as fc_tg:  # closed before the server: it leaves, not dropped
                if _simulated_fc(cfg):  # the simulated cell's FC: a real OPC UA client of the server above
                    sim_fc = SimFc(status.fc_url, orders=devices.orders)
                    await fc_tg.start(sim_fc.run)
                if on_ready is not None:
                    on_ready(run)
                end = await _operate(run, status, recovery)
                status.end = end
                fc_tg.cancel_scope.cancel()
            tg.cancel_scope.cancel()
        devices_tg.cancel_scope.cancel()
    return end, data, cell


def _alarm(run_box: list[CellRun], tg: TaskGroup, text: str) -> None:
    """Hold the cell with `text` as its alarm (once: a held cell's alarm stays until unhold)."""
    if run_box and not run_box[0].data.alarm and run_box[0].runner.is_active("execute"):
        tg.start_soon(run_box[0].command, Command("alarm", data=text))


async def _recover(cfg: RunConfig, store: CellStore, cell: DriverWorkcell, log_path: Path,
                   recorder: LogRecorder) -> Recovery:
    """Settle what a crash left (`fc.recovery`), the devices connected and before the chart takes an item: arrivals
    the item has left are skipped from now on, and the conveyor says where each interrupted task's item is once the
    robot runs no primitive (a robot still busy: the PLC's answer could change, so each is a handoff)."""
    pickup = Pickup(cell.plc)
    cell.present = pickup.present
    settled = await _robot_settled(cell.robot)
    recovery = await recover(store, cfg.log.dir, exclude=log_path, conveyor=pickup if settled else None)
    if recovery.interrupted:
        recorder.record("fc.recovery", anyio.current_time(), {
            "alarm": recovery.alarm, "handoffs": list(recovery.handoffs), "returned": list(recovery.returned),
            "released": list(recovery.released), "log_tail": recovery.log_tail, "robot_settled": settled})
    return recovery


async def _robot_settled(robot: RobotDriver, timeout_s: float = SETTLE_TIMEOUT_S) -> bool:
    """Until the robot runs no primitive (its status events, bounded); False when it still does."""
    with anyio.move_on_after(timeout_s), robot.events.subscription() as events:
        while (state := robot.state) is not None and state.status is Status.BUSY:
            await events.receive()
        return True
    log.warning("the robot still runs a primitive: interrupted tasks are reported as handoffs", timeout_s=timeout_s)
    return False


async def _operate(run: CellRun, status: RunStatus, recovery: Recovery) -> str:
    """Reset and start the cell, or after a crash hold it Aborted for the operator; return its end state."""
    if recovery.interrupted:
        log.error("the last run was interrupted mid-task: the cell waits in Aborted for Clear and Reset "
                  "(operator or FC)", alarm=recovery.alarm)
        run.data.alarm = recovery.alarm  # the FC's Alarm names the tasks until Clear and Reset
        await run.command(Command("cmd.abort", data=recovery.alarm))
        await run.wait_any(("aborted",))
        while not status.stop_requested:  # an operator's Clear, then Reset; the start is ours
            if await _wait_state_or_stop(run, status, "idle"):
                run.data.alarm = ""  # acknowledged by Clear and Reset
                recovery.clear()
                await run.command(Command("cmd.start", after_state="idle"))
                break
        return await run.wait_end() if not status.stop_requested else await run.wait_any(("stopped", "aborted"))
    await run.command(Command("cmd.reset"))
    # Tripped interlocks abort from reset on; a stop may come before the cell is idle.
    if await run.wait_any(("idle", "aborted")) == "idle" and not status.stop_requested:
        await run.command(Command("cmd.start", after_state="idle"))
    elif status.stop_requested:
        await run.command(Command("cmd.stop"))
    return await run.wait_end()


async def _wait_state_or_stop(run: CellRun, status: RunStatus, state: str) -> bool:
    """True once `state` is active; False when a stop was requested first."""
    with anyio.move_on_after(0.5):
        await run.wait_any((state,))
        return True
    return False


def _incident_sources(cell: DriverWorkcell) -> dict[str, Callable[[], dict[str, int]]]:
    ft, reflex = cell.ft, cell.reflex
    sources: dict[str, Callable[[], dict[str, int]]] = {
        "plc": cell.plc.incidents.snapshot, "robot": cell.robot.incidents.snapshot,
        "ft": lambda: {**ft.incidents.snapshot(), "lost": ft.stats.lost, "rejected": ft.stats.rejected,
                       "late": ft.stats.late, "status_errors": ft.stats.status_errors}}
    if reflex is not None:  # its counters (bad datagrams, foreign sources, restarts), numbers only
        sources["reflex"] = lambda: {k: v for k, v in reflex.stats().items()
                                     if isinstance(v, int) and not isinstance(v, bool)}
    return sources


def _simulated_fc(cfg: RunConfig) -> bool:
    """The built-in simulated cell brings its FC; with external devices only when [sim] fc_client says so."""
    return cfg.sim.fc_client and (cfg.cell.devices == "sim" or "fc_client" in cfg.sim.model_fields_set)


async def _connect(tg: TaskGroup, cfg: RunConfig, ep: Endpoints, devices: CellDevices,
                   recorder: LogRecorder, orders: FcOrders | None) -> DriverWorkcell:
    """Start the force reflex process, the drivers and the sensor log against `ep`; return once the PLC, the
    robot, the pod and the reflex are up. The reflex process reads the F/T sensor itself (and halts the robot on
    its own Modbus connection); the main process's `FTSensor` reads the stream the reflex relays."""
    # The whole ArrivalLog on the first connect: the item waiting at the pick-up point is announced again after a
    # restart; the records of items it has left are skipped (DriverWorkcell.present, the PLC's AtPickup).
    nodes = cfg.plc.nodes
    if AT_PICKUP not in nodes.extra:
        nodes = nodes.model_copy(update={"extra": {**nodes.extra, AT_PICKUP: AT_PICKUP_NODE}})
    plc = PlcClient(cfg.plc.model_copy(update={"url": ep.opcua_url, "resume_after_seq": 0, "nodes": nodes}))
    robot = RobotDriver(cfg.robot.model_copy(update={"host": ep.modbus[0], "port": ep.modbus[1]}))
    ft_cfg = cfg.ft.model_copy(update={"host": ep.ft[0], "port": ep.ft[1]})
    reflex = ReflexProcess(ReflexConfig.from_drivers(ft_cfg, robot.config))
    waiting = "the force reflex process"
    try:
        with anyio.fail_after(CONNECT_TIMEOUT_S):
            await tg.start(reflex.run)  # first: the FTSensor reads the stream it relays
            ft = FTSensor(ft_cfg.model_copy(update={"host": reflex.relay[0], "port": reflex.relay[1]}))
            cell = DriverWorkcell(plc=plc, robot=robot, ft=ft, perception=devices.perception,
                                  frames=devices.frames, orders=orders, recorder=recorder, reflex=reflex)
            if devices.attach is not None:  # a real camera: views are the robot's moves, the pod is the PLC's
                devices.attach(cell)
            sensors = SensorLog(recorder, ft=ft, robot=robot, plc=plc, ft_rate_hz=ep.ft_rate_hz)
            for task in (plc.run, robot.run, ft.run, sensors.run, cell.run):
                await tg.start(task)
            waiting = "the force reflex process's F/T stream and robot link"
            await reflex.wait_can_guard()
            waiting = f"the PLC at {ep.opcua_url}"
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


def _summary(cfg: RunConfig, end: str, data: cell_chart.CellData | None, hasher: TraceHasher, path: Path,
             cell: DriverWorkcell | None, event_log: EventLog) -> dict[str, Any]:
    counts = data.counts if data is not None else {}
    # learned or oracle; "sim-service (...)" as the service said in its hello (devices = "external")
    perception = getattr(cell.perception, "kind", "") if cell is not None else ""
    perception = perception or (cfg.perception.mode if cfg.cell.devices == "sim" else "sim-service")
    summary: dict[str, Any] = {
        "task": cfg.cell.task, "end_state": end, "cycles": data.cycles if data is not None else 0,
        "outcomes": {k: counts.get(k, 0) for k in ("done", "handoff", "fault")},
        "interrupted": data.interrupted if data is not None else 0,
        "reports": cell.reports if cell is not None else 0,
        "transitions": hasher.transitions, "log": str(path),
        "perception": perception,
    }
    if data is not None and data.alarm:
        summary["alarm"] = data.alarm
    if data is not None and data.stop_reason:
        summary["stop_reason"] = data.stop_reason
    if cell is not None:
        summary["incidents"] = {name: sum(snap().values()) for name, snap in _incident_sources(cell).items()}
    return summary
