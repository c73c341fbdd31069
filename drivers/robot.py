"""Robot controller and tool I/O over Modbus TCP (pymodbus async client); register map in `drivers.robot_map`.

Two connections to the robot:

- main: one input-image read (FC4, IR 0..12) per poll at `poll_hz` (>= 100 Hz; it feeds the suction stream,
  command completion, robot heartbeat and tool actuals), the controller heartbeat write, commands and tool
  setpoints. pymodbus does not multiplex requests on one connection, so every main request takes `_io_lock`
  and runs under its own `request_timeout_s`.
- halt: a second connection used only for the HALT register, so a stalled response on the main connection
  (or a queue of requests behind it) never delays a stop. It carries no traffic of its own, so it is probed
  (one read of HALT every heartbeat_period_s, `halt_probe_timeout_s`) and rebuilt on the first miss: a
  silently dead (half-open) halt link is found before a stop needs it. A HALT write that the halt link does not
  confirm within `halt_hedge_s` also goes out on the main link and a fresh connection at once; the first to
  be confirmed wins, all within `halt_timeout_s`.

Connection upkeep is our own (pymodbus's reconnect is disabled: its settings have regressed between
releases): the main link is rebuilt with exponential backoff (tenacity) after a connection error or
`max_consecutive_timeouts` timeouts in a row. Bad input from the peer (exception responses, timeouts,
out-of-range or NaN values, unknown status/fault codes) is counted in `incidents` and never raised out of the
background tasks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import anyio
from anyio.abc import TaskStatus
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from . import robot_map as rm
from .health import Incidents
from .robot_map import FaultCode, Primitive, Status
from .streams import Topic


class RobotConfig(BaseModel):
    # allow_inf_nan=False: an inf or NaN timeout is a guard that never fires. The upper bounds keep every timeout
    # and period within what still makes it a watchdog: a HALT that may take seconds is no stop, a heartbeat or a
    # request allowed to stall for minutes detects nothing.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(5020, ge=1, le=65535)
    unit_id: int = Field(1, ge=1, le=247)
    connect_timeout_s: float = Field(1.0, gt=0.0, le=10.0)
    request_timeout_s: float = Field(0.3, gt=0.0, le=5.0, description="one Modbus transaction on the main link")
    halt_timeout_s: float = Field(0.25, gt=0.0, le=2.0, description="one HALT delivery, all links together")
    halt_hedge_s: float = Field(
        0.05,
        gt=0.0,
        le=2.0,
        description="halt link silent this long: HALT also goes out on the main link and a fresh one",
    )
    halt_probe_timeout_s: float = Field(0.1, gt=0.0, le=2.0, description="halt link probe (every heartbeat_period_s)")
    max_consecutive_timeouts: int = Field(3, ge=1, le=100, description="then the main link is dropped and rebuilt")
    heartbeat_period_s: float = Field(0.1, gt=0.0, le=2.0)
    peer_heartbeat_timeout_s: float = Field(0.5, gt=0.0, le=10.0)
    poll_hz: float = Field(200.0, ge=100.0, le=1000.0, description="input image (suction pressure) poll rate")
    default_timeout_s: float = Field(30.0, gt=0.0, le=3600.0, description="execute() timeout when none is given")
    halt_abandoned: bool = Field(
        True, description="halt (latched) a primitive the driver stops waiting for: timeout, heartbeat or link lost"
    )
    halt_settle_s: float = Field(
        0.1, ge=0.0, le=1.0,
        description="the robot shows a HALT write in HALT_ACTIVE within this; only later polls judge who latched it",
    )
    setpoint_check_hz: float = Field(
        5.0, gt=0.0, le=50.0, description="read the tool setpoints back this often: a change not made here is logged"
    )
    reconnect_initial_s: float = Field(0.05, gt=0.0, le=10.0)
    reconnect_max_s: float = Field(2.0, gt=0.0, le=60.0)

    @model_validator(mode="after")
    def _consistent(self) -> RobotConfig:
        # Messages start with "<field>: " so that a loader can name the dotted key (cellctl.config does).
        if self.peer_heartbeat_timeout_s <= self.heartbeat_period_s:
            raise ValueError("peer_heartbeat_timeout_s: must exceed heartbeat_period_s")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s: must be >= reconnect_initial_s")
        if self.halt_hedge_s >= self.halt_timeout_s:
            raise ValueError("halt_hedge_s: must be shorter than halt_timeout_s")
        return self


class Outcome(StrEnum):
    DONE = "done"
    FAULT = "fault"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class PrimitiveResult:
    primitive: Primitive
    outcome: Outcome
    duration_s: float
    seq: int = 0  # 0: the command never went out
    fault_code: int = FaultCode.NONE
    fault_text: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.DONE


@dataclass(frozen=True, slots=True)
class SuctionSample:
    t: float  # time.monotonic() when the poll answered
    kpa: float  # gauge pressure, negative = vacuum
    valve_open: bool


@dataclass(frozen=True, slots=True)
class ToolState:
    """Tool actuals from the latest poll; None where the robot sent an invalid value (counted)."""

    t: float
    suction_kpa: float | None
    suction_valve: bool | None
    gripper_width_mm: float | None
    belt_speed_mm_s: float | None
    blade_extension_mm: float | None
    hook_closed: bool | None


@dataclass(frozen=True, slots=True)
class RobotState:
    t: float
    status: Status | None  # None: the robot sent an unknown status code (counted)
    ack: int
    fault_code: int
    active_primitive: int
    heartbeat: int
    halt_active: bool
    tool: ToolState


class EventKind(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    HEARTBEAT_LOST = "heartbeat_lost"
    HEARTBEAT_OK = "heartbeat_ok"
    STATUS = "status"  # robot status or fault code changed
    HALT_SENT = "halt_sent"
    EXTERNAL_HALT = "external_halt"  # HALT latched by someone else (panel, safety PLC, another master)
    EXTERNAL_HALT_RELEASED = "external_halt_released"
    SETPOINT_CHANGED = "setpoint_changed"  # a tool setpoint changed without a command from this driver


@dataclass(frozen=True, slots=True)
class RobotEvent:
    kind: EventKind
    message: str
    t: float
    status: Status | None = None
    fault_code: int = FaultCode.NONE


class RobotCommError(RuntimeError):
    """A request on a robot link failed (not connected, timeout, Modbus exception); already counted."""


class RobotExceptionResponse(RobotCommError):
    """The robot answered with a Modbus exception response: it did not act on the request."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


_TERMINAL = {Status.DONE: Outcome.DONE, Status.FAULT: Outcome.FAULT, Status.HALTED: Outcome.FAULT}


class _Writes:
    """Our writes to some registers, so that a read of them can tell whether it may have seen one half done: a
    read `clean` of its `mark` began after every write before it had settled (`settle_s`) and none overlapped it."""

    def __init__(self, settle_s: float = 0.0) -> None:
        self.settle_s = settle_s
        self._gen = 0  # odd while a write is in flight; +2 per write
        self._settled_at = 0.0  # time.monotonic() from which reads show the last write

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        self._gen += 1
        try:
            yield
        finally:
            self._gen += 1
            self._settled_at = time.monotonic() + self.settle_s

    def mark(self) -> tuple[int, float]:
        return self._gen, time.monotonic()

    def clean(self, mark: tuple[int, float]) -> bool:
        gen, t0 = mark
        return gen == self._gen and gen % 2 == 0 and t0 >= self._settled_at


class RobotDriver:
    """Commands primitives, streams suction pressure, drives tool I/O, keeps both heartbeats, halts.

    Start with `await tg.start(driver.run)`; `await driver.wait_ready()` blocks until the link is up and the
    robot heartbeat is alive.
    """

    def __init__(self, config: RobotConfig | None = None) -> None:
        self.config = config or RobotConfig()
        self.incidents = Incidents("robot")
        self.suction: Topic[SuctionSample] = Topic("robot.suction")
        self.events: Topic[RobotEvent] = Topic("robot.status")
        self._client: AsyncModbusTcpClient | None = None
        self._halt_client: AsyncModbusTcpClient | None = None
        self._io_lock = anyio.Lock()
        self._halt_lock = anyio.Lock()
        self._exec_lock = anyio.Lock()
        self._link_scope: anyio.CancelScope | None = None
        self._probe_scope: anyio.CancelScope | None = None
        self._timeouts_in_row = 0
        self._state: RobotState | None = None
        self._changed = anyio.Event()
        self._connected = False
        self._peer_alive = False
        self._peer_hb: int | None = None
        self._peer_hb_changed_at = 0.0
        self._peer_lost_reported = False
        self._hb_counter = 0
        # Halt ownership: a HALT_ACTIVE this driver did not write is someone else's and is never released here.
        self._halt_ours = False  # we latched HALT (halt() or claim_halt()) and have not released it since
        self._halt_writes = _Writes(self.config.halt_settle_s)  # a poll that may not show them is not judged
        self._external_halt = False
        self._halt_expected = False  # a co-operating halter is armed: a rise is judged by whoever armed it
        self._setpoints: dict[str, float] = {}  # tool setpoints as last written or read back
        self._setpoint_writes = _Writes()

    # --- public state -----------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def peer_alive(self) -> bool:
        return self._peer_alive

    @property
    def state(self) -> RobotState | None:
        return self._state

    @property
    def external_halt(self) -> bool:
        """HALT is latched and this driver did not latch it: only whoever set it may release it."""
        return self._external_halt

    def expect_halt(self, expected: bool) -> None:
        """While a co-operating halter (the reflex process) is armed, a HALT rise is not judged here: the one who
        armed it calls `claim_halt` (the reflex tripped) or `mark_external_halt` (it did not)."""
        self._halt_expected = expected

    def mark_external_halt(self, detail: str = "") -> None:
        """HALT is latched and nobody here latched it (a primitive ended HALTED that this controller did not halt)."""
        if not self._halt_ours:
            self._set_external_halt(True, "robot halted externally" + (f": {detail}" if detail else ""))

    def claim_halt(self) -> None:
        """A co-operating halter of this controller (the reflex process) latched HALT: it is ours."""
        self._halt_ours = True
        self._set_external_halt(False, "halt claimed by this controller's reflex")

    def _set_external_halt(self, latched: bool, message: str) -> None:
        if latched is self._external_halt:
            return
        self._external_halt = latched
        if latched:
            self.incidents.count("external_halt", message)
        else:
            self.incidents.info(message)
        self._publish(EventKind.EXTERNAL_HALT if latched else EventKind.EXTERNAL_HALT_RELEASED, message)
        self._notify()

    @property
    def tool(self) -> ToolState | None:
        return self._state.tool if self._state else None

    async def wait_ready(self) -> None:
        """Until the main link is up and the robot heartbeat has been seen changing."""
        while not (self._connected and self._peer_alive and self._state is not None):
            await self._wait_change()

    # --- lifecycle --------------------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep both links up, poll, heartbeat, watch the robot heartbeat; until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watchdog)
                tg.start_soon(self._halt_link_upkeep)
                task_status.started()
                while True:
                    await self._link_session()
        finally:
            for client in (self._client, self._halt_client):
                if client is not None:
                    client.close()
            self._client = self._halt_client = None
            self._connected = self._peer_alive = False

    async def _connect(self, name: str) -> AsyncModbusTcpClient:
        """Connect with exponential backoff until it works (tenacity)."""
        cfg = self.config
        retrying = AsyncRetrying(
            wait=wait_exponential(multiplier=cfg.reconnect_initial_s, max=cfg.reconnect_max_s)
            + wait_random(0, cfg.reconnect_initial_s),
            retry=retry_if_exception_type(RobotCommError),
            sleep=anyio.sleep,
        )
        async for attempt in retrying:
            with attempt:
                return await self._connect_once(name)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect_once(self, name: str) -> AsyncModbusTcpClient:
        cfg = self.config
        client = AsyncModbusTcpClient(
            cfg.host,
            port=cfg.port,
            name=f"robot-{name}",
            timeout=cfg.connect_timeout_s,
            retries=0,
            reconnect_delay=0,  # no pymodbus auto-reconnect: we own the upkeep
        )
        ok = False
        try:
            with anyio.move_on_after(cfg.connect_timeout_s * 1.5):
                ok = await client.connect()
        except BaseException:  # cancelled (e.g. a halt attempt overtaken by another): do not leak the socket
            client.close()
            raise
        if not ok or not client.connected:
            client.close()
            self.incidents.count("connect_failed", f"robot {name} link: cannot connect", host=cfg.host, port=cfg.port)
            raise RobotCommError(f"cannot connect to robot at {cfg.host}:{cfg.port}")
        return client

    async def _link_session(self) -> None:
        client = await self._connect("main")
        self._client, self._connected, self._timeouts_in_row = client, True, 0
        self._peer_alive, self._peer_hb, self._peer_lost_reported = False, None, False
        self._peer_hb_changed_at = time.monotonic()
        self._publish(EventKind.CONNECTED, f"connected to robot at {self.config.host}:{self.config.port}")
        try:
            async with anyio.create_task_group() as tg:
                self._link_scope = tg.cancel_scope
                tg.start_soon(self._poll_loop)
                tg.start_soon(self._heartbeat_loop)
                tg.start_soon(self._setpoint_watch)
        finally:
            self._link_scope = None
            self._client = None
            self._connected = self._peer_alive = False
            client.close()
            self._publish(EventKind.DISCONNECTED, "robot main link down")
            self._notify()

    def _link_down(self, reason: str) -> None:
        self.incidents.count("connection_lost", f"robot main link lost: {reason}")
        if self._link_scope is not None:
            self._link_scope.cancel()

    async def _halt_link_upkeep(self) -> None:
        """Keep the halt link up: probe it every heartbeat period, rebuild it when closed or on the first miss."""
        while True:
            client = self._halt_client
            if client is not None and client.connected and await self._probe_halt_link(client):
                await anyio.sleep(self.config.heartbeat_period_s)
                continue
            if client is not None:
                self._drop_halt_client(client)
            self._adopt_halt_client(await self._connect("halt"))
            await anyio.sleep(self.config.heartbeat_period_s)

    async def _probe_halt_link(self, client: AsyncModbusTcpClient) -> bool:
        """One read of HALT on the halt link; False (counted) if it is not answered in halt_probe_timeout_s.

        A HALT write preempts it (cancels it): then there is no verdict, and True.
        """
        cfg = self.config
        try:
            with anyio.CancelScope() as self._probe_scope:
                try:
                    with anyio.fail_after(cfg.halt_probe_timeout_s):
                        async with self._halt_lock:
                            if client is not self._halt_client or not client.connected:
                                return True  # replaced or closed by a halt meanwhile: next round
                            rsp = await client.read_holding_registers(rm.HALT.address, count=1, device_id=cfg.unit_id)
                except (TimeoutError, ModbusException) as exc:
                    self.incidents.count(
                        "halt_link_probe_failed", f"robot halt link probe failed ({exc!r}): rebuilding the halt link"
                    )
                    return False
                self._accepted(rsp, "halt link probe")  # even an exception response shows the link is alive
        finally:
            self._probe_scope = None
        return True

    def _drop_halt_client(self, client: AsyncModbusTcpClient) -> None:
        """Close a halt-link client; forget it only if it is still the installed one (not a newer one)."""
        client.close()
        if self._halt_client is client:
            self._halt_client = None

    def _adopt_halt_client(self, new: AsyncModbusTcpClient, replacing: AsyncModbusTcpClient | None = None) -> None:
        """Install `new` as the halt link unless a live one (other than `replacing`) is there; close the loser."""
        current = self._halt_client
        if current is new:
            return
        if current is not None and current.connected and current is not replacing:
            new.close()  # rebuilt meanwhile
            return
        if current is not None:
            current.close()
        self._halt_client = new

    # --- main-link requests -----------------------------------------------------------------------------------

    async def _request(self, what: str, call: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """One transaction on the main link: serialised, bounded, every failure counted."""
        cfg = self.config
        async with self._io_lock:
            client = self._client
            if client is None:
                raise RobotCommError(f"{what}: not connected")
            if not client.connected:  # the peer closed it
                self._link_down("connection closed by the robot")
                raise RobotCommError(f"{what}: connection closed")
            try:
                with anyio.fail_after(cfg.request_timeout_s):
                    rsp = await call(client)
            except TimeoutError:
                self._timeouts_in_row += 1
                self.incidents.count(
                    "request_timeout", f"robot {what}: no response in {cfg.request_timeout_s} s",
                    in_a_row=self._timeouts_in_row,
                )  # fmt: skip
                if self._timeouts_in_row >= cfg.max_consecutive_timeouts:
                    self._link_down(f"{self._timeouts_in_row} timeouts in a row")
                raise RobotCommError(f"{what}: timeout") from None
            except ConnectionException as exc:
                self._link_down(f"{what}: {exc}")
                raise RobotCommError(f"{what}: connection lost") from exc
            except ModbusException as exc:
                self.incidents.count("protocol_error", f"robot {what}: {exc}")
                if not client.connected:
                    self._link_down(f"{what}: {exc}")
                raise RobotCommError(f"{what}: {exc}") from exc
        self._timeouts_in_row = 0
        if rsp.isError():
            code = getattr(rsp, "exception_code", 0)
            self.incidents.count(
                "modbus_exception", f"robot {what}: Modbus exception response {code} ({_exc_name(code)})",
                function_code=rsp.function_code,
            )  # fmt: skip
            raise RobotExceptionResponse(f"{what}: Modbus exception {code} ({_exc_name(code)})", code)
        return rsp

    async def _write(self, what: str, address: int, regs: list[int]) -> None:
        unit = self.config.unit_id
        if len(regs) == 1:
            await self._request(what, lambda c: c.write_register(address, regs[0], device_id=unit))
        else:
            await self._request(what, lambda c: c.write_registers(address, regs, device_id=unit))

    # --- background loops ----------------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        period = 1.0 / self.config.poll_hz
        unit = self.config.unit_id
        next_t = anyio.current_time()
        while True:
            mark = self._halt_writes.mark()
            try:
                rsp = await self._request(
                    "poll", lambda c: c.read_input_registers(0, count=rm.IR_COUNT, device_id=unit)
                )
            except RobotCommError:
                pass  # counted in _request
            else:
                self._on_inputs(rsp.registers, judge_halt=self._halt_writes.clean(mark))
            next_t += period
            now = anyio.current_time()
            if next_t < now - period:  # fell behind (stall): do not burst to catch up
                next_t = now
            await anyio.sleep(max(0.0, next_t - now))

    async def _heartbeat_loop(self) -> None:
        while True:
            self._hb_counter = (self._hb_counter + 1) & 0xFFFF
            with contextlib.suppress(RobotCommError):  # counted in _request
                await self._write("heartbeat", rm.HEARTBEAT_CTRL.address, [self._hb_counter])
            await anyio.sleep(self.config.heartbeat_period_s)

    async def _setpoint_watch(self) -> None:
        """Tool setpoints read back: one that changed without a command from here is logged (another master)."""
        while True:
            await anyio.sleep(1.0 / self.config.setpoint_check_hz)
            mark = self._setpoint_writes.mark()
            try:
                values = await self.read_setpoints()
            except RobotCommError:
                continue  # counted in _request
            if not self._setpoint_writes.clean(mark):
                continue  # one of ours was written meanwhile
            for f in _TOOL_SETPOINTS:
                value, known = values[f.name], self._setpoints.get(f.name)
                if known is not None and abs(value - known) > f.scale / 2:
                    msg = f"tool setpoint {f.name} changed to {value:g} {f.unit} (was {known:g}) without a command"
                    self.incidents.count("setpoint_changed", msg, field=f.name)
                    self._publish(EventKind.SETPOINT_CHANGED, msg)
                self._setpoints[f.name] = value

    async def _watchdog(self) -> None:
        """Robot heartbeat: declared lost when it has not changed for peer_heartbeat_timeout_s."""
        cfg = self.config
        while True:
            await anyio.sleep(min(cfg.heartbeat_period_s, cfg.peer_heartbeat_timeout_s / 4))
            silent = time.monotonic() - self._peer_hb_changed_at
            if self._connected and silent > cfg.peer_heartbeat_timeout_s and not self._peer_lost_reported:
                self._peer_alive, self._peer_lost_reported = False, True
                msg = f"robot heartbeat lost: unchanged for {silent:.2f} s"
                self.incidents.count("peer_heartbeat_lost", msg)
                self._publish(EventKind.HEARTBEAT_LOST, msg)
                self._notify()

    # --- input image ---------------------------------------------------------------------------------------------

    def _valid(self, f: rm.Field, value: float) -> float | None:
        if f.in_range(value):
            return value
        self.incidents.count("bad_value", f"robot sent {f.name} = {value} outside [{f.lo}, {f.hi}] {f.unit}")
        return None

    def _on_inputs(self, regs: Sequence[int], judge_halt: bool = False) -> None:
        now = time.monotonic()
        if len(regs) < rm.IR_COUNT:
            self.incidents.count("bad_response", f"robot poll: {len(regs)} registers, expected {rm.IR_COUNT}")
            return
        img = rm.InputImage.decode(regs)
        status: Status | None
        try:
            status = Status(img.status)
        except ValueError:
            self.incidents.count("unknown_status", f"robot sent unknown STATUS {img.status}")
            status = None
        if img.fault_code and img.fault_code not in rm.FAULT_TEXT:
            self.incidents.count("unknown_fault", f"robot sent unknown FAULT_CODE {img.fault_code}")

        def flag(f: rm.Field, v: float) -> bool | None:
            ok = self._valid(f, v)
            return None if ok is None else bool(ok)

        kpa = self._valid(rm.SUCTION_KPA, img.suction_kpa)
        valve = flag(rm.SUCTION_VALVE, img.suction_valve)
        tool = ToolState(
            t=now,
            suction_kpa=kpa,
            suction_valve=valve,
            gripper_width_mm=self._valid(rm.GRIPPER_WIDTH, img.gripper_width_mm),
            belt_speed_mm_s=self._valid(rm.BELT_SPEED, img.belt_speed_mm_s),
            blade_extension_mm=self._valid(rm.BLADE_EXT, img.blade_extension_mm),
            hook_closed=flag(rm.HOOK, img.hook),
        )
        state = RobotState(
            t=now, status=status, ack=img.ack, fault_code=img.fault_code, active_primitive=img.active_primitive,
            heartbeat=img.heartbeat, halt_active=bool(img.halt_active), tool=tool,
        )  # fmt: skip
        prev, self._state = self._state, state
        # robot heartbeat
        if img.heartbeat != self._peer_hb:
            if self._peer_hb is not None:  # a change, not the first value seen
                self._peer_hb_changed_at = now
                if not self._peer_alive:
                    self._peer_alive, self._peer_lost_reported = True, False
                    self._publish(EventKind.HEARTBEAT_OK, "robot heartbeat alive")
            self._peer_hb = img.heartbeat
        if prev is None or (prev.status, prev.fault_code) != (status, img.fault_code):
            name = status.name if status is not None else f"unknown({img.status})"
            text = f"robot {name}" + (f": {rm.fault_text(img.fault_code)}" if img.fault_code else "")
            self._publish(EventKind.STATUS, text, status=status, fault_code=img.fault_code)
        if kpa is not None:
            self.suction.publish(SuctionSample(now, kpa, bool(valve)))
        if judge_halt:
            self._judge_halt(bool(img.halt_active))
        self._notify()

    def _judge_halt(self, active: bool) -> None:
        if active and not self._halt_ours and not self._halt_expected:
            self._set_external_halt(True, "robot halted externally: HALT latched by another master; it stays until "
                                          "whoever set it releases it")
        elif not active and self._external_halt:
            self._set_external_halt(False, "external halt released")
        elif not active and self._halt_ours:
            self._halt_ours = False  # our latch is gone (released by another master or a robot restart)
            self.incidents.count("halt_released_externally", "robot halt latch released by someone else")

    # --- notification helpers ------------------------------------------------------------------------------

    def _publish(self, kind: EventKind, message: str, *, status: Status | None = None, fault_code: int = 0) -> None:
        self.events.publish(RobotEvent(kind, message, time.monotonic(), status, fault_code))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    def _unavailable(self) -> tuple[int, str] | None:
        if not self._connected or self._state is None:
            return FaultCode.NOT_CONNECTED, f"not connected to the robot at {self.config.host}:{self.config.port}"
        if not self._peer_alive:
            silent = time.monotonic() - self._peer_hb_changed_at
            return FaultCode.PEER_HEARTBEAT_LOST, f"robot heartbeat lost (unchanged for {silent:.2f} s)"
        return None

    # --- commands ------------------------------------------------------------------------------------------------

    async def execute(
        self,
        primitive: Primitive | str,
        params: Sequence[float] | Mapping[str, float] = (),
        timeout: float | None = None,  # noqa: ASYNC109 -- expiry is an outcome (TIMEOUT + halt), not a cancellation
    ) -> PrimitiveResult:
        """Write parameters, trigger (CMD_SEQ last), await DONE / FAULT / HALTED or the timeout.

        Robot and link problems come back as a FAULT/TIMEOUT result (never raised); a bad primitive name or
        parameter raises ValueError before anything is sent.
        """
        prim = Primitive.parse(primitive)
        values = rm.resolve_params(prim, params)
        timeout = self.config.default_timeout_s if timeout is None else timeout
        t0 = time.monotonic()

        def result(outcome: Outcome, seq: int = 0, code: int = 0, text: str = "") -> PrimitiveResult:
            return PrimitiveResult(prim, outcome, time.monotonic() - t0, seq, code, text)

        if self._exec_lock.locked():
            return result(Outcome.FAULT, code=FaultCode.DRIVER_BUSY, text=rm.fault_text(FaultCode.DRIVER_BUSY))
        async with self._exec_lock:
            if (why := self._unavailable()) is not None:
                return result(Outcome.FAULT, code=why[0], text=why[1])
            assert self._state is not None
            seq = rm.next_seq(self._state.ack)
            acked = False
            running = False  # the trigger write has started: the primitive may be running on the robot
            try:
                with anyio.move_on_after(timeout):
                    try:
                        await self._write(f"{prim.name.lower()} params", 0, rm.encode_command(prim, values))
                    except RobotCommError as exc:
                        return result(Outcome.FAULT, 0, FaultCode.COMM_ERROR, f"command not sent: {exc}")
                    running = True
                    try:
                        await self._write(f"{prim.name.lower()} trigger", rm.CMD_SEQ.address, [seq])
                    except RobotExceptionResponse as exc:
                        running = False
                        return result(Outcome.FAULT, 0, FaultCode.COMM_ERROR, f"command refused: {exc}")
                    except RobotCommError as exc:  # the trigger may have reached the robot: do not leave it running
                        running = False
                        text = await self._abandon(f"trigger not confirmed: {exc}")
                        return result(Outcome.FAULT, seq, FaultCode.COMM_ERROR, text)
                    while True:
                        if (why := self._unavailable()) is not None:
                            running = False
                            text = f"{why[1]} while {prim.name.lower()} was running"
                            return result(Outcome.FAULT, seq, why[0], await self._abandon(text))
                        st = self._state
                        if st is not None and st.ack == seq:
                            acked = True
                            if st.status in _TERMINAL:
                                running = False
                                code = st.fault_code if st.status is not Status.DONE else 0
                                return result(_TERMINAL[st.status], seq, code, rm.fault_text(code) if code else "")
                        await self._wait_change()
                running = False
                text = f"no {'completion' if acked else 'acknowledge'} within {timeout} s"
                return result(Outcome.TIMEOUT, seq, 0, await self._abandon(text))
            except BaseException:  # cancelled by the caller (or failed) with the primitive possibly running
                if running and self.config.halt_abandoned:
                    with anyio.CancelScope(shield=True):
                        halted = await self.halt()
                    outcome = "robot halted" if halted else "HALT FAILED"
                    self.incidents.info(f"robot {prim.name.lower()} abandoned by its caller: {outcome}", seq=seq)
                raise

    async def _abandon(self, text: str) -> str:
        """The driver stops waiting for a running primitive: halt it (best effort) unless configured not to."""
        if not self.config.halt_abandoned:
            return text
        return text + ("; robot halted" if await self.halt() else "; HALT FAILED")

    async def halt(self) -> bool:
        """Stop now: HALT=1 on the dedicated halt link (latched until `clear_halt`). True if the robot took it.

        If the halt link does not confirm within halt_hedge_s (or fails), HALT also goes out on the main link and,
        when the halt link was an existing one, a fresh connection; the first confirmation wins. Shielded from
        cancellation (a stop must not be abandoned half-sent); bounded by halt_timeout_s.
        """
        self._halt_ours = True  # before the write: the next poll may already see it
        with anyio.CancelScope(shield=True):
            ok = await self._write_halt(1, "halt")
        self._publish(EventKind.HALT_SENT, "halt sent" if ok else "halt could not be delivered")
        return ok

    async def clear_halt(self) -> bool:
        """Release the halt latch (HALT=0) so primitives run again; never one this driver did not latch."""
        if self._external_halt:
            self.incidents.count("external_halt_kept", "not releasing a robot halt this controller did not set")
            return False
        ok = await self._write_halt(0, "clear halt")
        if ok:
            self._halt_ours = False
        return ok

    async def _write_halt(self, value: int, what: str) -> bool:
        """HALT := value, hedged over the halt link, the main link and a fresh connection; True once one confirms."""
        with self._halt_writes.writing():
            return await self._write_halt_hedged(value, what)

    async def _write_halt_hedged(self, value: int, what: str) -> bool:
        cfg = self.config
        delivered = False
        halt_link_done = anyio.Event()

        async def attempt(via: Callable[[], Awaitable[bool]], done: anyio.Event | None = None) -> None:
            nonlocal delivered
            try:
                if await via():
                    delivered = True
                    tg.cancel_scope.cancel()  # the others are no longer needed
            except Exception as exc:  # a stop path reports, it does not raise
                self.incidents.count("halt_link_error", f"robot {what} failed: {exc!r}")
            finally:
                if done is not None:
                    done.set()

        suspect = self._halt_client if self._halt_client is not None and self._halt_client.connected else None
        with anyio.move_on_after(cfg.halt_timeout_s):
            async with anyio.create_task_group() as tg:
                tg.start_soon(attempt, lambda: self._halt_via_halt_link(value, what), halt_link_done)
                with anyio.move_on_after(cfg.halt_hedge_s):
                    await halt_link_done.wait()
                if not delivered:
                    self.incidents.count(
                        "halt_hedged",
                        f"robot {what}: halt link gave no confirmation within {cfg.halt_hedge_s} s, "
                        "sending it on the main link and a fresh connection too",
                    )
                    tg.start_soon(attempt, lambda: self._halt_via_main_link(value, what))
                    if suspect is not None:  # (otherwise the halt link attempt is a fresh connection already)
                        tg.start_soon(attempt, lambda: self._halt_via_fresh_link(value, what, suspect))
        if not delivered:
            self.incidents.count("halt_failed", f"robot {what} could not be delivered within {cfg.halt_timeout_s} s")
        return delivered

    async def _halt_via_halt_link(self, value: int, what: str) -> bool:
        client = self._halt_client
        fresh = client is None or not client.connected
        if fresh:
            try:
                client = await self._connect_once("halt")
            except RobotCommError:
                return False  # counted
        assert client is not None
        confirmed = False
        try:
            if self._probe_scope is not None:
                self._probe_scope.cancel()  # a stop does not queue behind a probe
            async with contextlib.nullcontext() if fresh else self._halt_lock:
                rsp = await client.write_register(rm.HALT.address, value, device_id=self.config.unit_id)
            confirmed = True
        except ModbusException as exc:
            self.incidents.count("halt_link_error", f"robot {what} on halt link failed: {exc!r}")
            return False
        finally:
            if not confirmed:  # failed, timed out or overtaken: the link is suspect
                self._drop_halt_client(client)
            elif fresh:
                self._adopt_halt_client(client)  # the new halt link, unless upkeep installed one meanwhile
        return self._accepted(rsp, f"{what} (halt link)")

    async def _halt_via_main_link(self, value: int, what: str) -> bool:
        try:
            await self._write(f"{what} (main link)", rm.HALT.address, [value])
        except RobotCommError:
            return False  # counted
        return True

    async def _halt_via_fresh_link(self, value: int, what: str, suspect: AsyncModbusTcpClient) -> bool:
        try:
            client = await self._connect_once("halt")
        except RobotCommError:
            return False  # counted
        confirmed = False
        try:
            rsp = await client.write_register(rm.HALT.address, value, device_id=self.config.unit_id)
            confirmed = True
        except ModbusException as exc:
            self.incidents.count("halt_link_error", f"robot {what} on a fresh connection failed: {exc!r}")
            return False
        finally:
            if confirmed:
                self._adopt_halt_client(client, replacing=suspect)  # it works: the new halt link
            else:
                client.close()
        return self._accepted(rsp, f"{what} (fresh connection)")

    def _accepted(self, rsp: ModbusPDU, what: str) -> bool:
        if rsp.isError():
            code = getattr(rsp, "exception_code", 0)
            self.incidents.count("modbus_exception", f"robot {what}: Modbus exception {code} ({_exc_name(code)})")
            return False
        return True

    # --- tool I/O --------------------------------------------------------------------------------------------

    async def _set(self, f: rm.Field, value: float) -> None:
        if not f.in_range(value):
            raise ValueError(f"{f.name} = {value} outside [{f.lo}, {f.hi}] {f.unit}")
        with self._setpoint_writes.writing():
            await self._write(f"set {f.name}", f.address, f.encode(value))
            self._setpoints[f.name] = f.decode(f.encode(value))  # as the register holds it

    async def set_gripper_width(self, mm: float) -> None:
        await self._set(rm.GRIPPER_WIDTH_SP, mm)

    async def set_belt_speed(self, mm_s: float) -> None:
        await self._set(rm.BELT_SPEED_SP, mm_s)

    async def set_blade_extension(self, mm: float) -> None:
        await self._set(rm.BLADE_EXT_SP, mm)

    async def set_suction(self, on: bool) -> None:
        await self._set(rm.SUCTION_VALVE_SP, int(on))

    async def set_hook(self, closed: bool) -> None:
        await self._set(rm.HOOK_SP, int(closed))

    async def read_tool(self, max_wait_s: float = 0.5) -> ToolState:
        """Tool actuals from the next poll (at most 1/poll_hz old); RobotCommError if none comes in time."""
        current = self._state
        with anyio.move_on_after(max_wait_s):
            while self._state is current or self._state is None:
                await self._wait_change()
            return self._state.tool
        raise RobotCommError(f"no input image from the robot within {max_wait_s} s")

    async def read_setpoints(self) -> dict[str, float]:
        """Tool setpoints as the robot holds them (one FC3 read)."""
        unit = self.config.unit_id
        rsp = await self._request(
            "read setpoints", lambda c: c.read_holding_registers(0, count=rm.HR_COUNT, device_id=unit)
        )
        regs = rsp.registers
        if len(regs) < rm.HR_COUNT:
            raise RobotCommError(f"read setpoints: {len(regs)} registers, expected {rm.HR_COUNT}")
        return {f.name: f.decode(f.slice(regs)) for f in (*_TOOL_SETPOINTS, rm.HALT)}


_TOOL_SETPOINTS = (rm.GRIPPER_WIDTH_SP, rm.BELT_SPEED_SP, rm.BLADE_EXT_SP, rm.SUCTION_VALVE_SP, rm.HOOK_SP)


def _exc_name(code: int) -> str:
    try:
        return ExcCodes(code).name
    except ValueError:
        return "unknown"


__all__ = [
    "EventKind",
    "Outcome",
    "PrimitiveResult",
    "RobotCommError",
    "RobotConfig",
    "RobotDriver",
    "RobotEvent",
    "RobotExceptionResponse",
    "RobotState",
    "SuctionSample",
    "ToolState",
]
