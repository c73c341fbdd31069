"""Benchmark (issue 12.4): SIGKILL the controller mid-stow, again and again; no item lost, none reported twice.

One `cellctl devices --sim --json` subprocess (the simulated cell: PLC, robot, F/T, sim-service; a fixed seed) runs
the whole campaign; the controller, `python -m cellctl run --config <toml> --json` with `devices = "external"`, runs
as a subprocess against it, killed and restarted:

    devices (one process) ◄── controller (killed N times) ◄── FC: SimFc (ledger, acks; reconnects) + a panel client
      PLC: HandedOver ─────────────────────────────────────────► the conveyor's truth, read after every kill

Each round waits for a running task (the FC's Cellctl.CurrentTask.TaskId), then a seeded random delay up to
`--max-delay`, then SIGKILL; now and then (ARRIVAL_P) it waits for the next item at the pick-up point instead (the
PLC's AtPickup) and kills within ARRIVAL_DELAY_S, while the controller journals and acknowledges it.
The store (read-only, the controller dead) says what the kill interrupted: the case. The controller is started
again; with a task interrupted (a journal entry, or an alarm not yet cleared) the FC must see Aborted (9) and an
Alarm naming each task, and calls Clear, then Reset (the controller starts itself once Idle); otherwise the cell
must reach Execute by itself. Now and then the restart is killed too (case f: at a random moment of the start-up, or
while it waits Aborted) and must come back Aborted with the same alarm. A controller killed with the robot's HALT
latched (in Aborted, or before its next primitive released the abort's HALT) leaves it latched, and the restarted
one never releases a halt it did not set: before each restart the operator, finding the robot halted (HALT_ACTIVE),
releases it at the robot's panel (a Modbus write), and again when a Clear does not take (`halts_released`).

At the end the FC holds the cell (its task's report committed), waits until nothing is unacknowledged and stops the
controller with SIGINT. Checked: every item the conveyor handed over (its HandedOver log, merged across reads) has
exactly one report in the FC's ledger (`lost`: none, `duplicated`: more than one, or a task id twice); each task
interrupted with its item handed over is a handoff with `recovered: true` and a last known location; a task whose
item was still at the pick-up point has no report (the item is reported under its next task); the only report of an
item not handed over is the final hold's, for the item still at the pick-up point; nothing pending or unfinished in
the store, no alarm file left.

Cases (what the kill interrupted): a = between tasks (no journal entry), bc = item journalled, no primitive begun
(acknowledgement sent or not), d:<primitive> = that primitive begun last (grasp, in the gripper, band open, blade
out ...), f = a restart killed; `e` counts the kills that left a committed report unacknowledged (redelivered).

Usage: python bench/crash.py [--kills N] [--seed N] [--time-scale S] [--max-delay S] [--dir PATH] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import structlog
from asyncua import Client, Node, ua
from pymodbus.client import AsyncModbusTcpClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout before bench/ (its statecharts.py)

from cellctl.fc.simclient import SimFc
from drivers import robot_map as rm
from drivers.plc_nodes import SIM_NAMESPACE

LOCAL = "127.0.0.1"
PACKML = "http://opcfoundation.org/UA/PackML/"
OURS = "urn:cellctl:fc"
DEVICES_START_S = 120.0  # asyncua builds the PLC's address space; slow on a loaded machine
START_S = 90.0  # a controller from spawn to Execute or Aborted (imports, reflex process, FC server)
STATE_S = 30.0  # a commanded PackML state
TASK_S = 30.0  # until a task runs
STOP_S = 60.0  # SIGINT to exit
ABORTED, STOPPED, EXECUTE, HELD = 9, 2, 6, 11
CLEARS = 5  # Clear again when the cell aborts at once (the robot's HALT release not yet seen)
CLEAR_S = 3.0
READ_TRIES = 5  # the harness's reads of the simulated PLC, each after a reconnect
AGAIN_P = 0.12  # chance, per interrupted restart, of killing it at start-up or while Aborted (case f)
ARRIVAL_P = 0.3  # chance that a kill is timed from an arrival (AtPickup), not from a task's start
ARRIVAL_DELAY_S = 0.2  # such a kill comes this soon: while the item is journalled and acknowledged


class CampaignError(RuntimeError):
    """The campaign could not go on (a process died, a state never came): not a finding about recovery."""


# -- processes ---------------------------------------------------------------------------------------------------
@dataclass
class Devices:
    """`cellctl devices --sim --json` on ephemeral ports."""

    proc: subprocess.Popen[str]
    info: dict[str, Any]
    err_path: Path

    @classmethod
    def start(cls, work: Path, seed: int, time_scale: float) -> Devices:
        err_path = work / "devices.stderr"
        with err_path.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cellctl", "devices", "--sim", "--json", "--opcua-port", "0", "--modbus-port",
                 "0", "--ft-port", "0", "--service-port", "0", "--time-scale", str(time_scale), "--seed", str(seed)],
                stdout=subprocess.PIPE, stderr=err, text=True, cwd=_ROOT)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], DEVICES_START_S)
        line = proc.stdout.readline() if ready else ""
        if not line:
            _stop(proc)
            raise CampaignError(f"`cellctl devices --sim` printed no endpoints within {DEVICES_START_S:.0f} s:\n"
                                f"{_tail(err_path)}")
        return cls(proc, json.loads(line), err_path)

    def stop(self) -> int | None:
        return _stop(self.proc)


def _stop(proc: subprocess.Popen[str], timeout_s: float = STOP_S) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Controller:
    """One life of `python -m cellctl run --config <toml> --json`."""

    proc: subprocess.Popen[str]
    life: int
    out_path: Path
    err_path: Path
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, work: Path, config: Path, life: int) -> Controller:
        out_path, err_path = work / f"run{life:03d}.stdout", work / f"run{life:03d}.stderr"
        with out_path.open("w") as out, err_path.open("w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "cellctl", "run", "--config", str(config), "--json"],
                                    stdout=out, stderr=err, text=True, cwd=_ROOT)
        return cls(proc, life, out_path, err_path)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL
        self.proc.wait()

    def died(self, what: str) -> CampaignError:
        return CampaignError(f"controller (life {self.life}) exited with {self.proc.returncode} while {what}:\n"
                             f"{_tail(self.err_path)}")

    def summary(self) -> dict[str, Any]:
        lines = self.out_path.read_text().strip().splitlines()
        return json.loads(lines[-1]) if lines else {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        return int(s.getsockname()[1])


def _config(work: Path, info: dict[str, Any], fc_port: int) -> Path:
    path = work / "cell.toml"
    path.write_text(
        f'[cell]\ndevices = "external"\ntask = "stow"\nstatus_period_s = 0.5\n'
        f'[log]\ndir = "{work / "logs"}"\n'
        f'[plc]\nurl = "{info["opcua"]}"\n'
        # The controller's loop stalls for seconds while asyncua builds the FC address space (a loaded 2-core
        # machine: up to ~10 s); a keepalive read caught in that stall times out and drops the PLC session, and the
        # interlocks it leaves unknown abort the cell at start. Rare keepalives with a long timeout ride it out.
        'watchdog_interval_s = 10.0\nrequest_timeout_s = 10.0\n'
        f'[robot]\nhost = "{info["modbus"][0]}"\nport = {info["modbus"][1]}\n'
        f'[ft]\nhost = "{info["ft"][0]}"\nport = {info["ft"][1]}\n'
        f'[camera]\nkind = "sim-service"\nhost = "{info["service"][0]}"\nport = {info["service"][1]}\n'
        f'[sim]\nfc_client = false\n'
        f'[fc]\nhost = "{LOCAL}"\nport = {fc_port}\nredeliver_after_s = 1.0\nstore = "{work / "fc.sqlite"}"\n',
        encoding="utf-8")
    return path


# -- what the store says (read-only; the controller dead, or alive: WAL readers do not block it) -------------------
def store_view(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"journal": [], "pending": 0, "outbox": []}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        journal = [{"task_id": t, "kind": k, "item_id": i, "last_step": json.loads(s)}
                   for t, k, i, s in conn.execute("SELECT task_id, kind, item_id, last_step FROM journal ORDER BY seq")]
        pending = int(conn.execute("SELECT count(*) FROM outbox WHERE acked_s IS NULL").fetchone()[0])
        outbox = [t for (t,) in conn.execute("SELECT task_id FROM outbox")]
    finally:
        conn.close()
    return {"journal": journal, "pending": pending, "outbox": outbox}


# -- the FC's panel: PackML state, alarm, current task; the commands -----------------------------------------------
class Panel:
    """One OPC UA session with one controller life: watched variables and the PackML command methods."""

    WATCHED = ("StateCurrent", "Alarm", "CurrentTask.TaskId", "PendingReportCount")

    def __init__(self, client: Client, controller: Controller) -> None:
        self.client, self.controller = client, controller
        self.values: dict[str, Any] = {}
        self.changed = anyio.Event()

    def datachange_notification(self, node: Node, value: Any, data: Any) -> None:
        self.values[self._names[node.nodeid]] = value
        self.changed.set()
        self.changed = anyio.Event()

    def status_change_notification(self, status: Any) -> None:
        pass  # the session ends with its controller: `until` notices the process

    async def setup(self) -> None:
        c = self.client
        p, o = await c.get_namespace_index(PACKML), await c.get_namespace_index(OURS)
        cell = await c.nodes.objects.get_child(f"{o}:Cell")
        self.base = await cell.get_child(f"{p}:BaseStateMachine")
        self.machine = await self.base.get_child(f"{p}:MachineState")
        self.execute = await self.machine.get_child(f"{p}:ExecuteState")
        self._p = p
        nodes = [c.get_node(f"ns={o};s=Cellctl.{name}") for name in self.WATCHED]
        self._names = {n.nodeid: name for n, name in zip(nodes, self.WATCHED, strict=True)}
        sub = await c.create_subscription(20, self)
        await sub.subscribe_data_change(nodes)

    async def call(self, machine: Node, method: str) -> None:
        node = await machine.get_child(f"{self._p}:{method}")
        await machine.call_method(node.nodeid)

    async def until(self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout_s: float) -> None:
        """Until the watched values satisfy `predicate` (their change notifications; the controller must live)."""
        with anyio.fail_after(timeout_s):
            while not predicate(self.values):
                if not self.controller.alive:
                    raise self.controller.died(what)
                with anyio.move_on_after(1.0):  # the liveness check above, at least once a second
                    await self.changed.wait()

    async def state_in(self, states: tuple[int, ...], what: str, timeout_s: float = STATE_S) -> int:
        try:
            await self.until(lambda v: v.get("StateCurrent") in states, what, timeout_s)
        except TimeoutError:
            raise CampaignError(f"{what}: state {self.values.get('StateCurrent')} after {timeout_s:.0f} s, "
                                f"not one of {states}; alarm {self.values.get('Alarm')!r}") from None
        return int(self.values["StateCurrent"])


@contextlib.asynccontextmanager
async def panel(controller: Controller, url: str) -> AsyncIterator[Panel]:
    """Connect once the controller's FC server listens (retried, bounded); closed without waiting on a dead one."""
    deadline = time.monotonic() + START_S
    while True:
        if not controller.alive:
            raise controller.died("starting")
        client = Client(url, timeout=5)
        try:
            await client.connect()
            break
        except (OSError, TimeoutError, ua.UaError):
            if time.monotonic() > deadline:
                raise CampaignError(f"controller's FC server at {url} not up within {START_S:.0f} s:\n"
                                    f"{_tail(controller.err_path)}") from None
            await anyio.sleep(0.2)  # refused: not listening yet
    p = Panel(client, controller)
    try:
        await p.setup()
        yield p
    finally:
        with anyio.move_on_after(2.0, shield=True), contextlib.suppress(Exception):
            await client.disconnect()


# -- the conveyor's truth: the PLC's hand-over record ---------------------------------------------------------------
class Conveyor:
    """Reads the simulated PLC's Conveyor.HandedOver / HandedOverCount / AtPickup; merges the hand-overs by `n`."""

    def __init__(self, url: str, say: Callable[[str], None] = lambda _text: None) -> None:
        self.url, self.say = url, say
        self.client: Client | None = None
        self.handed: dict[int, dict[str, Any]] = {}  # n -> {"n", "seq", "item_id"}
        self.at = ""  # AtPickup, as last notified
        self.changed = anyio.Event()
        self.reconnects = 0

    async def connect(self) -> None:
        self.client = Client(self.url, timeout=10)
        await self.client.connect()
        await self.setup()

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with anyio.move_on_after(2), contextlib.suppress(Exception):
                await client.disconnect()

    async def _value(self, node: str) -> Any:
        """A node's value; a lost session (asyncua's keepalive gives up on a loaded machine) is opened again."""
        for attempt in range(1, READ_TRIES + 1):
            try:
                return await getattr(self, node).read_value()
            except (ConnectionError, OSError, TimeoutError) as exc:
                if attempt == READ_TRIES:
                    raise CampaignError(f"the harness lost the simulated PLC: {exc!r}") from exc
                self.reconnects += 1
                self.say(f"harness: PLC session lost ({exc!r}), reconnecting")
                await self.close()
                with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                    await self.connect()
        raise AssertionError("unreachable")

    def datachange_notification(self, node: Node, value: Any, data: Any) -> None:
        self.at = str(value or "")
        self.changed.set()
        self.changed = anyio.Event()

    def status_change_notification(self, status: Any) -> None:
        pass

    async def next_arrival(self, controller: Controller, timeout_s: float = TASK_S) -> None:
        """Until the next item stands at the pick-up point (an AtPickup other than now's)."""
        now = self.at
        with anyio.fail_after(timeout_s):
            while self.at in ("", now):
                if not controller.alive:
                    raise controller.died("waiting for an arrival")
                with anyio.move_on_after(1.0):
                    await self.changed.wait()
                    continue
                self.at = str(await self._value("pickup") or "")  # no notification for a second: look

    async def setup(self) -> None:
        assert self.client is not None
        ns = await self.client.get_namespace_index(SIM_NAMESPACE)
        node = self.client.get_node
        self.log = node(f"ns={ns};s=StowStation.Conveyor.HandedOver")
        self.count = node(f"ns={ns};s=StowStation.Conveyor.HandedOverCount")
        self.pickup = node(f"ns={ns};s=StowStation.Conveyor.AtPickup")
        sub = await self.client.create_subscription(20, self)
        await sub.subscribe_data_change(self.pickup)

    async def read(self) -> None:
        count = int(await self._value("count"))  # first: the PLC writes it after the log, so the log has it
        records = [json.loads(t) for t in await self._value("log") or []]
        if records and self.handed and min(r["n"] for r in records) > max(self.handed) + 1:
            raise CampaignError(f"hand-overs {max(self.handed) + 1}..{min(r['n'] for r in records) - 1} left the PLC's "
                                "HandedOver log before they were read")
        for r in records:
            self.handed[int(r["n"])] = r
        if count and sorted(self.handed)[:count] != list(range(1, count + 1)):
            raise CampaignError(f"HandedOverCount {count}, records {sorted(self.handed)[:5]}...: incomplete")

    async def at_pickup(self) -> str:
        text = await self._value("pickup")
        return str(json.loads(text)["item_id"]) if text else ""


# -- the campaign ----------------------------------------------------------------------------------------------------
@dataclass
class Campaign:
    kills: int
    seed: int
    time_scale: float
    max_delay_s: float
    work: Path
    rng: random.Random = field(init=False)
    lives: int = 0
    halts_released: int = 0
    killed: int = 0
    cases: Counter[str] = field(default_factory=Counter)
    interrupted: dict[str, dict[str, Any]] = field(default_factory=dict)  # task id -> its journal entry at a kill
    problems: list[str] = field(default_factory=list)
    faults: list[tuple[str, Any]] = field(default_factory=list)  # (task id, reason) of fault reports
    log: list[dict[str, Any]] = field(default_factory=list)
    progress: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.store = self.work / "fc.sqlite"
        self.alarm_path = self.work / "fc.sqlite.recovery.json"

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        self.devices = devices = Devices.start(self.work, self.seed, self.time_scale)
        try:
            fc_port = _free_port()
            config = _config(self.work, devices.info, fc_port)
            url = f"opc.tcp://{LOCAL}:{fc_port}/cellctl/fc"
            fc = SimFc(url, reconnect_s=0.2)
            conveyor = Conveyor(devices.info["opcua"], self.say)
            await conveyor.connect()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(fc.run)
                    controller = await self._campaign(config, url, conveyor)
                    await self._finish(controller, url, fc, conveyor)
                    tg.cancel_scope.cancel()
            finally:
                await conveyor.close()
        finally:
            current: Controller | None = getattr(self, "current", None)
            if current is not None and current.alive:  # a campaign cut short: no controller left behind
                current.kill()
            rc = devices.stop()
        if rc != 0:
            self.problems.append(f"`cellctl devices --sim` did not stop cleanly (rc {rc}): {_tail(devices.err_path)}")
        return self._result(fc, conveyor, time.monotonic() - started)

    async def _campaign(self, config: Path, url: str, conveyor: Conveyor) -> Controller:
        controller = self._start(config)
        async with panel(controller, url) as p:
            await p.state_in((EXECUTE,), "first start")
        while self.killed < self.kills:
            async with panel(controller, url) as p:
                await p.state_in((EXECUTE,), "running before a kill")
                try:
                    if self.rng.random() < ARRIVAL_P:
                        await conveyor.next_arrival(controller)
                        delay = self.rng.uniform(0.0, ARRIVAL_DELAY_S)
                    else:
                        await p.until(lambda v: bool(v.get("CurrentTask.TaskId")), "waiting for a task", TASK_S)
                        delay = self.rng.uniform(0.0, self.max_delay_s)
                except TimeoutError:
                    raise CampaignError(f"no task or arrival within {TASK_S:.0f} s (life {controller.life})") from None
                await anyio.sleep(delay)  # the kill moment: random on purpose
            controller = await self._kill_and_recover(controller, config, url, conveyor, delay)
        return controller

    def _start(self, config: Path) -> Controller:
        self.lives += 1
        self.current = Controller.start(self.work, config, self.lives)
        return self.current

    def _kill(self, controller: Controller, case: str | None, delay_s: float) -> dict[str, Any]:
        """SIGKILL, then what the store says it interrupted."""
        controller.kill()
        self.killed += 1
        view = store_view(self.store)
        journal = view["journal"]
        if case is None:
            if not journal:
                case = "a"
            else:
                step = journal[-1]["last_step"].get("primitive")
                case = f"d:{step}" if step else "bc"
        self.cases[case] += 1
        if view["pending"]:
            self.cases["e"] += 1
        for entry in journal:
            self.interrupted[entry["task_id"]] = entry
        record = {"kill": self.killed, "life": controller.life, "case": case, "delay_s": round(delay_s, 3),
                  "journal": [(e["task_id"], e["item_id"], e["last_step"].get("primitive")) for e in journal],
                  "pending": view["pending"], "alarm_file": self.alarm_path.exists()}
        self.log.append(record)
        self.say(f"kill {self.killed:3d}/{self.kills}  case {case:14s} delay {delay_s:5.2f} s  "
                 f"journal {record['journal']}  unacked {view['pending']}")
        return view

    async def _kill_and_recover(self, controller: Controller, config: Path, url: str, conveyor: Conveyor,
                                delay_s: float, case: str | None = None) -> Controller:
        view = self._kill(controller, case, delay_s)
        await conveyor.read()
        while True:
            await self._release_halt(only_latched=True)
            expected = sorted({e["task_id"] for e in view["journal"]} | self._carried())
            controller = self._start(config)
            if expected and self.killed < self.kills and self.rng.random() < AGAIN_P:  # f: killed at start-up
                delay = self.rng.uniform(0.5, 6.0)
                with anyio.move_on_after(delay):
                    async with panel(controller, url) as p:
                        await p.state_in((ABORTED,), "restarting (to be killed)", START_S)
                view = self._kill(controller, "f", delay)
                continue
            async with panel(controller, url) as p:
                state = await p.state_in((ABORTED, EXECUTE), "restarting", START_S)
                if not expected:
                    if state != EXECUTE:
                        self.problems.append(f"life {controller.life}: Aborted with nothing interrupted "
                                             f"({p.values.get('Alarm')!r})")
                    return controller
                if state != ABORTED:
                    self.problems.append(f"life {controller.life}: {expected} interrupted, yet the cell went to "
                                         "Execute without Clear and Reset")
                    return controller
                await p.until(lambda v: bool(v.get("Alarm")), "waiting for the alarm", STATE_S)
                alarm = str(p.values["Alarm"])
                missing = [t for t in expected if t not in alarm]
                if missing:
                    self.problems.append(f"life {controller.life}: the alarm names not {missing}: {alarm!r}")
                again = self.killed < self.kills and self.rng.random() < AGAIN_P  # f: killed while Aborted
                if not again:
                    await self._clear(p)
                    await p.call(p.machine, "Reset")
                    await p.state_in((EXECUTE,), "after Reset (the controller starts itself once Idle)")
                    await p.until(lambda v: v.get("Alarm") == "", "the alarm cleared", STATE_S)
                    return controller
            view = self._kill(controller, "f", 0.0)

    async def _release_halt(self, *, only_latched: bool = False) -> None:
        """The operator's panel: the robot's HALT released (0), as test_run_alarms' panel latches it (`only_latched`:
        when HALT_ACTIVE says it is latched, as the operator who finds the robot halted after a crash does)."""
        host, port = self.devices.info["modbus"]
        client = AsyncModbusTcpClient(host, port=port, timeout=2.0)
        try:
            if not await client.connect():
                raise CampaignError(f"the robot's Modbus port {host}:{port} refused the operator's panel")
            if only_latched:
                active = await client.read_input_registers(rm.HALT_ACTIVE.address, count=1, device_id=1)
                if active.isError() or not active.registers[0]:
                    return
            self.halts_released += 1
            await client.write_register(rm.HALT.address, 0, device_id=1)
        finally:
            client.close()

    async def _clear(self, p: Panel) -> None:
        """Clear until Stopped. A cell that aborts again at once has a tripped interlock: the robot's HALT, latched
        by the dead controller; the operator releases it at the panel and clears again (the controller sees the
        release at its next poll: a Clear before that aborts once more)."""
        for attempt in range(CLEARS):
            if attempt:
                await self._release_halt()
            await p.call(p.base, "Clear")
            with contextlib.suppress(CampaignError):
                await p.state_in((STOPPED,), "after Clear", CLEAR_S)
                return
        await p.state_in((STOPPED,), f"after Clear ({CLEARS} times)")

    def _carried(self) -> set[str]:
        """Task ids of a recovery alarm not yet cleared (the alarm file)."""
        try:
            data = json.loads(self.alarm_path.read_text())
        except (OSError, ValueError):
            return set()
        return {e["task_id"] for key in ("handoffs", "returned") for e in data.get(key, [])}

    async def _store_settled(self) -> None:
        """Until the store itself has no unacknowledged report and no open task (STATE_S at most): the
        PendingReportCount the panel shows can still be the 0 from before the held task's report was committed."""
        with anyio.move_on_after(STATE_S):
            while True:
                view = await anyio.to_thread.run_sync(store_view, self.store)
                if not view["pending"] and not view["journal"]:
                    return
                await anyio.sleep(0.1)

    async def _finish(self, controller: Controller, url: str, fc: SimFc, conveyor: Conveyor) -> None:
        """Hold (the running task's report committed), wait until all is acknowledged, then SIGINT."""
        async with panel(controller, url) as p:
            await p.state_in((EXECUTE,), "running before the final hold")
            await p.call(p.execute, "Hold")
            await p.state_in((HELD,), "holding at the end")
            try:
                await p.until(lambda v: v.get("PendingReportCount") == 0, "waiting for the last acks", STATE_S)
            except TimeoutError:
                self.problems.append(f"reports still unacknowledged at the end: {p.values.get('PendingReportCount')}")
            await self._store_settled()
        rc = await anyio.to_thread.run_sync(_stop, controller.proc)
        if rc != 0:
            self.problems.append(f"the final SIGINT: controller exit {rc}: {_tail(controller.err_path)}")
        await conveyor.read()
        self.final_pickup = await conveyor.at_pickup()
        self.final_store = store_view(self.store)
        self.final_summary = controller.summary()

    def _result(self, fc: SimFc, conveyor: Conveyor, wall_s: float) -> dict[str, Any]:
        ledger = fc.ledger
        handed = {r["item_id"] for r in conveyor.handed.values()}
        by_item: dict[str, list[dict[str, Any]]] = {}
        for task_id, r in ledger.reports.items():
            if r.get("item_id"):
                by_item.setdefault(str(r["item_id"]), []).append({"task_id": task_id, **r})
        lost = sorted(i for i in handed if i not in by_item)
        doubled = sorted(i for i in handed if len(by_item.get(i, [])) > 1)
        if len(handed) != len(conveyor.handed):
            self.problems.append("an item was handed over twice by the conveyor")
        extra = {i: rs for i, rs in by_item.items() if i not in handed}
        for item, rs in extra.items():  # only the final hold's task, for the item still at the pick-up point
            if item != self.final_pickup or len(rs) != 1 or rs[0].get("recovered"):
                self.problems.append(f"item {item} reported but never handed over: {[r['task_id'] for r in rs]}")
        handoffs = returned = 0
        for task_id, entry in self.interrupted.items():
            report = ledger.reports.get(task_id)
            if report is None:
                returned += 1
                item = entry["item_id"]
                if entry["kind"] == "stow" and item in handed and len(by_item.get(item, [])) != 1:
                    self.problems.append(f"task {task_id} left item {item} at the pick-up point: it has "
                                         f"{len(by_item.get(item, []))} reports")
                if entry["kind"] == "stow" and item not in handed and item != self.final_pickup:
                    self.problems.append(f"task {task_id}: item {item} neither handed over nor at the pick-up point")
                continue
            handoffs += 1
            where = (report.get("last_known") or {}).get("location")
            if report.get("outcome") != "handoff" or report.get("recovered") is not True or not where:
                shown = {k: report.get(k) for k in ("outcome", "recovered", "last_known")}
                self.problems.append(f"interrupted task {task_id}: not a recovered handoff with a location: {shown}")
            if report.get("item_id") not in handed:
                self.problems.append(f"interrupted task {task_id} reported a handoff of item "
                                     f"{report.get('item_id')}, which the conveyor still had")
        outcomes = Counter(str(r.get("outcome")) for r in ledger.reports.values())
        faults = [(t, r.get("reason")) for t, r in ledger.reports.items()
                  if r.get("outcome") == "fault" and not str(r.get("reason", "")).startswith("interrupted")]
        # The world injects no faults, so a fault is the controller's own trouble (e.g. a guarded motion refused
        # because the F/T stream stayed stale on a loaded machine): counted and shown, but the item has its one
        # report, so it is not a lost or duplicated record.
        self.faults = faults
        final = self.final_store
        if final["pending"] or final["journal"]:
            self.problems.append(f"the store at the end: {final['pending']} pending, journal {final['journal']}")
        if self.alarm_path.exists():
            self.problems.append(f"the recovery alarm file is left: {self.alarm_path}")
        if ledger.conflicts:
            self.problems.append(f"task ids reported twice: {ledger.conflicts}")
        missing_in_ledger = sorted(set(final["outbox"]) - set(ledger.reports))
        if missing_in_ledger:
            self.problems.append(f"reports in the outbox the FC never got: {missing_in_ledger}")
        return {
            "kills": self.killed, "items": len(handed), "reports": len(ledger.reports),
            "lost": len(lost), "duplicated": len(doubled) + len(ledger.conflicts),
            "handoffs": handoffs, "returned": returned, "redeliveries": ledger.duplicates,
            "outcomes": dict(sorted(outcomes.items())),
            "lives": self.lives, "halts_released": self.halts_released, "cases": dict(sorted(self.cases.items())),
            "seeds": {"world": self.seed, "kills": self.seed}, "time_scale": self.time_scale,
            "max_delay_s": self.max_delay_s, "wall_s": round(wall_s, 1),
            "lost_items": lost, "duplicated_items": doubled, "problems": self.problems,
            "harness_reconnects": conveyor.reconnects,
            "faults": len(self.faults), "fault_reasons": dict(Counter(str(r) for _, r in self.faults)),
            "final_summary": {k: self.final_summary.get(k) for k in ("end_state", "cycles", "outcomes", "fc")},
        }


async def campaign(kills: int = 20, *, seed: int = 1, time_scale: float = 0.05, max_delay_s: float = 1.5,
                   work: Path | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a campaign of `kills` SIGKILLs (see the module docstring); its figures and the problems found."""
    if work is None:
        with tempfile.TemporaryDirectory(prefix="cellctl-crash-") as tmp:
            return await campaign(kills, seed=seed, time_scale=time_scale, max_delay_s=max_delay_s, work=Path(tmp),
                                  progress=progress)
    c = Campaign(kills, seed, time_scale, max_delay_s, work, progress=progress)
    return await c.run()


def _table(r: dict[str, Any], out: IO[str]) -> None:
    print(f"crash campaign: {r['kills']} SIGKILLs over {r['lives']} controller lives in {r['wall_s']:.0f} s "
          f"(seed {r['seeds']['world']}, time scale {r['time_scale']})", file=out)
    rows = [("items handed over by the conveyor", r["items"]), ("reports in the FC's ledger", r["reports"]),
            ("lost (handed over, no report)", r["lost"]), ("duplicated (more than one report)", r["duplicated"]),
            ("interrupted: reported as handoffs", r["handoffs"]),
            ("interrupted: item still on the conveyor", r["returned"]),
            ("redeliveries dropped by the FC", r["redeliveries"]),
            ("robot HALTs the operator released", r["halts_released"]),
            ("fault reports (the world injects none)", r["faults"])]
    for name, value in rows:
        print(f"  {name:38s} {value:6d}", file=out)
    print("  kills by case: " + ", ".join(f"{k} {v}" for k, v in r["cases"].items()), file=out)
    for reason, n in r["fault_reasons"].items():
        print(f"    fault {n}x: {reason}", file=out)
    print(f"  problems: {len(r['problems'])}", file=out)
    for p in r["problems"]:
        print(f"    - {p}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the controller (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="the world's seed and the kill moments' (default 1)")
    parser.add_argument("--time-scale", type=float, default=0.05, help="the devices' time scale (default 0.05)")
    parser.add_argument("--max-delay", type=float, default=1.5, help="kill at up to this long after a task began")
    parser.add_argument("--dir", type=Path, default=None, help="keep the logs and the store here (default: a "
                        "temporary directory)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no line per kill on stderr")
    args = parser.parse_args(argv)
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)  # a killed server's sessions end noisily
    progress = None if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    work = args.dir
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    errors: list[BaseException] = []
    try:
        result = anyio.run(lambda: campaign(args.kills, seed=args.seed, time_scale=args.time_scale,
                                            max_delay_s=args.max_delay, work=work, progress=progress))
    except* CampaignError as group:
        errors.extend(group.exceptions)
    if errors:
        for exc in errors:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        _table(result, sys.stdout)
    return 0 if result["lost"] == result["duplicated"] == 0 and not result["problems"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
