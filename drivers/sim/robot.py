"""Simulated robot controller: a pymodbus Modbus TCP server implementing `drivers.robot_map`.

Every request passes through a `SimDevice` action hook, so the robot reacts to a write the moment it
arrives: a CMD_SEQ change starts the primitive (ACK/STATUS update before the write is even answered),
a HALT write stops it and records its `perf_counter` arrival time in `halt_times` (and calls `on_halt`).
Input registers are rendered from the model on every read; a 5 ms tick advances primitives and tool
dynamics (suction pressure first order, ~100 ms to vacuum; blade/gripper move over the primitive).

Fault injection for tests and simulation: `fail_next`, `stall_next`, `set_response_delay`,
`inject_exceptions`, `stop_heartbeat`/`resume_heartbeat`, `set_suction_leak`, `force_input`.

An optional `PrimitiveModel` lets a world model (the simulated cell, `drivers.sim.cell_devices`) decide each
primitive's duration and faults (`begin`), follow it while it runs (`tick`) and apply its effect when it ends
(`end`, exactly once per begun primitive, whether it completed or was stopped).
Writes to HALT, and reads of HALT alone (the driver's halt link probe), are exempt from response delays and
injected exceptions (the stop path is served first, as on a real controller's safety input), so a delay
models a stalled main connection.

The TCP side is as strict as a real controller (`_StrictModbusTcpServer`): every complete MBAP frame of a
segment is answered (pipelined requests, each under its own transaction id; a request held by a response
delay does not hold back the ones behind it), a frame for another unit id gets no answer at all, an unknown
function code gets ILLEGAL_FUNCTION and a malformed request ILLEGAL_VALUE; a stream that is not MBAP
(protocol id other than 0, impossible length) cannot be re-synchronised, so the connection is closed.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import anyio
import structlog
from anyio.abc import TaskStatus
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from .. import robot_map as rm
from ..robot_map import FaultCode, Primitive, Status

DEFAULT_DURATIONS_S: dict[str, float] = {
    "approach": 2.5,
    "extend_blade": 0.8,
    "sweep": 2.0,
    "eject_item": 1.5,
    "retract": 1.5,
    "open_band": 0.6,
    "close_band": 0.6,
    "grasp": 1.0,
    "attach": 0.5,
    "extract": 2.0,
    "place": 1.5,
    "halt": 0.2,
    "release": 0.4,
}

# A stow: reach the bin, open the band, slide the blade in, sweep, belt the item in, back out (~12 s).
STOW_CYCLE: tuple[Primitive, ...] = (
    Primitive.APPROACH, Primitive.OPEN_BAND, Primitive.EXTEND_BLADE, Primitive.SWEEP,
    Primitive.EJECT_ITEM, Primitive.RETRACT, Primitive.CLOSE_BAND, Primitive.APPROACH,
)  # fmt: skip

_FC_READ_HR, _FC_READ_IR = 3, 4


@dataclass(frozen=True, slots=True)
class PrimitivePlan:
    """How a primitive model wants one primitive to run (times unscaled: SimRobot applies time_scale)."""

    duration_s: float
    fault_at_s: float | None = None  # from the start
    fault_code: int = 0
    stall: bool = False  # never completes (the controller stops answering: Modbus timeout)


class PrimitiveModel(Protocol):
    """A world model behind the robot: plans each primitive and sees it run and end."""

    def begin(self, primitive: Primitive, params: list[float], now: float) -> PrimitivePlan | None:
        """A validated primitive starts (params in PRIMITIVE_PARAMS order); None: the robot's own duration."""
        ...

    def tick(self, now: float) -> None:
        """Every robot tick while a begun primitive runs."""
        ...

    def end(self, completed: bool, now: float) -> None:
        """Once per begun primitive: completed, or stopped (halt, fault, superseded, heartbeat loss)."""
        ...


class SimRobotConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(5020, ge=0, le=65535)
    unit_id: int = Field(1, ge=1, le=247)
    time_scale: float = Field(1.0, gt=0.0, le=100.0, description="primitive durations are multiplied by this")
    durations_s: dict[str, float] = Field(default_factory=dict, description="overrides of DEFAULT_DURATIONS_S")
    tick_s: float = Field(0.005, gt=0.0, le=0.05)
    heartbeat_period_s: float = Field(0.05, gt=0.0)
    controller_heartbeat_timeout_s: float = Field(0.5, gt=0.0)
    vacuum_kpa: float = Field(-80.0, ge=-101.3, lt=0.0)
    leak_vacuum_kpa: float = Field(-12.0, ge=-101.3, le=0.0)
    suction_tau_s: float = Field(0.03, gt=0.0, description="first-order time constant (~95 % in 3 tau)")
    attach_settle_s: float = Field(0.15, ge=0.0, description="attach never completes sooner than this (unscaled)")
    gripper_speed_mm_s: float = Field(200.0, gt=0.0)
    blade_speed_mm_s: float = Field(400.0, gt=0.0)

    @field_validator("durations_s")
    @classmethod
    def _known_primitives(cls, value: dict[str, float]) -> dict[str, float]:
        for name, seconds in value.items():
            Primitive.parse(name)
            if not (math.isfinite(seconds) and seconds >= 0):
                raise ValueError(f"duration of {name} must be a finite number >= 0, got {seconds}")
        return value

    def duration(self, primitive: Primitive) -> float:
        name = primitive.name.lower()
        return self.durations_s.get(name, DEFAULT_DURATIONS_S[name]) * self.time_scale


@dataclass(slots=True)
class _Axis:
    """A tool axis moving toward its target at a bounded rate."""

    actual: float
    target: float
    rate: float

    def step(self, dt: float) -> None:
        delta = self.target - self.actual
        step = self.rate * dt
        self.actual = self.target if abs(delta) <= step else self.actual + math.copysign(step, delta)


@dataclass(slots=True)
class _Running:
    primitive: Primitive
    seq: int
    params: list[float]
    deadline: float
    fault_at: float | None = None
    fault_code: int = 0


class SimRobot:
    """The simulated robot controller; `await tg.start(sim.serve)` returns the bound port."""

    def __init__(
        self,
        config: SimRobotConfig | None = None,
        *,
        on_halt: Callable[[float], None] | None = None,
        model: PrimitiveModel | None = None,
    ) -> None:
        self.config = config or SimRobotConfig()
        self.on_halt = on_halt
        self.model = model
        self.log = structlog.get_logger("sim.robot")
        self.port: int | None = None
        # observable by tests/benchmarks
        self.halt_times: list[float] = []
        self.commands: list[tuple[int, int, list[float]]] = []  # (seq, primitive id, params) per trigger
        self.exceptions_sent = 0
        self.stalled_requests = 0  # requests currently held by set_response_delay
        self.requests = 0
        # model
        self._img = rm.InputImage()
        self._hr = [0] * rm.HR_COUNT
        self._running: _Running | None = None
        self._halt_latched = False
        self._ctrl_hb_last_change: float | None = None  # None until the first controller heartbeat write
        self._ctrl_hb_lost = False
        self._gripper = _Axis(80.0, 80.0, self.config.gripper_speed_mm_s)
        self._blade = _Axis(0.0, 0.0, self.config.blade_speed_mm_s)
        self._belt_mm_s = 0.0
        self._valve = False
        self._hook = False
        self._pressure_kpa = 0.0
        self._hr[rm.GRIPPER_WIDTH_SP.address : rm.GRIPPER_WIDTH_SP.address + 2] = rm.GRIPPER_WIDTH_SP.encode(80.0)
        # fault injection
        self._next_fault: tuple[int, float] | None = None
        self._stall_next = False
        self._delay_s = 0.0
        self._unstall = anyio.Event()
        self._exceptions_left = 0
        self._exception_code = ExcCodes.DEVICE_FAILURE
        self._heartbeat_on = True
        self._leak = False
        self._forced: dict[str, list[int]] = {}

    # --- fault injection ----------------------------------------------------------------------------------------

    def fail_next(self, code: FaultCode | int, after_fraction: float = 0.5) -> None:
        """The next primitive faults with `code` after `after_fraction` of its duration."""
        self._next_fault = (int(code), after_fraction)

    def stall_next(self) -> None:
        """The next primitive stays BUSY forever (until halted or superseded)."""
        self._stall_next = True

    def set_response_delay(self, seconds: float) -> None:
        """Hold every response (except the halt path) this long; 0 releases the ones being held now."""
        self._delay_s = max(0.0, seconds)
        if self._delay_s == 0.0:
            self._unstall.set()
            self._unstall = anyio.Event()

    def inject_exceptions(self, count: int, code: ExcCodes = ExcCodes.DEVICE_FAILURE) -> None:
        """Answer the next `count` requests (except the halt path) with a Modbus exception response."""
        self._exceptions_left = count
        self._exception_code = code

    def stop_heartbeat(self) -> None:
        self._heartbeat_on = False

    def resume_heartbeat(self) -> None:
        self._heartbeat_on = True

    def set_suction_leak(self, leak: bool) -> None:
        """A leaking cup only reaches `leak_vacuum_kpa`."""
        self._leak = leak

    def force_input(self, name: str, registers: Sequence[int] | None) -> None:
        """Override an input field's raw registers in every read (None restores the model value)."""
        f = rm.field(name)
        if f.table != "ir":
            raise ValueError(f"{name} is not an input register")
        if registers is None:
            self._forced.pop(name, None)
        else:
            if len(registers) != f.size:
                raise ValueError(f"{name} takes {f.size} registers")
            self._forced[name] = [r & 0xFFFF for r in registers]

    # --- observable state -----------------------------------------------------------------------------------------

    @property
    def status(self) -> Status:
        return Status(self._img.status)

    @property
    def fault_code(self) -> int:
        return self._img.fault_code

    @property
    def halted(self) -> bool:
        return self._halt_latched

    @property
    def suction_kpa(self) -> float:
        return self._pressure_kpa

    @property
    def controller_heartbeat_lost(self) -> bool:
        return self._ctrl_hb_lost

    # --- server -------------------------------------------------------------------------------------------------

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        device = SimDevice(
            id=cfg.unit_id,
            simdata=(
                bits,
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=rm.HR_COUNT, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=rm.IR_COUNT, values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )
        server = _StrictModbusTcpServer(device, address=(cfg.host, cfg.port), unit_id=cfg.unit_id)
        await server.serve_forever(background=True)
        try:
            # pymodbus annotates `transport` as a BaseTransport; a listener's is loop.create_server's asyncio.Server
            listener = cast(asyncio.Server, server.transport)
            self.port = int(listener.sockets[0].getsockname()[1])
            self.log.info("sim robot listening", host=cfg.host, port=self.port)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._tick_loop)
                tg.start_soon(self._heartbeat_loop)
                task_status.started(self.port)
        finally:
            self._unstall.set()  # let held requests finish so no handler task outlives the server
            with anyio.CancelScope(shield=True):
                await server.shutdown()
            self.log.info("sim robot stopped", port=self.port)

    async def _heartbeat_loop(self) -> None:
        while True:
            await anyio.sleep(self.config.heartbeat_period_s)
            if self._heartbeat_on:
                self._img.heartbeat = (self._img.heartbeat + 1) & 0xFFFF

    async def _tick_loop(self) -> None:
        last = anyio.current_time()
        while True:
            await anyio.sleep(self.config.tick_s)
            now = anyio.current_time()
            self._tick(now, now - last)
            last = now

    def _tick(self, now: float, dt: float) -> None:
        cfg = self.config
        self._gripper.step(dt)
        self._blade.step(dt)
        target = (cfg.leak_vacuum_kpa if self._leak else cfg.vacuum_kpa) if self._valve else 0.0
        self._pressure_kpa = target + (self._pressure_kpa - target) * math.exp(-dt / cfg.suction_tau_s)
        # controller heartbeat watchdog
        last = self._ctrl_hb_last_change
        if last is not None and not self._ctrl_hb_lost and now - last > cfg.controller_heartbeat_timeout_s:
            self._ctrl_hb_lost = True
            self.log.warning("controller heartbeat lost: halting motion", silent_s=round(now - last, 3))
            self._stop_motion()
            self._end_run(completed=False, now=now)
            self._img.status, self._img.fault_code = Status.FAULT, FaultCode.CONTROLLER_HEARTBEAT_LOST
        run = self._running
        if run is None:
            return
        if self.model is not None:
            try:
                self.model.tick(now)
            except Exception:  # a broken model must not stop the tick loop (and with it the server)
                self.log.exception("primitive model tick failed", primitive=run.primitive.name)
        if run.fault_at is not None and now >= run.fault_at:
            self._finish(Status.FAULT, run.fault_code, now)
        elif now >= run.deadline:
            self._complete(run, now)

    # --- request hook -------------------------------------------------------------------------------------------

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests += 1
        reading = function_code in (_FC_READ_HR, _FC_READ_IR)
        writing = set_values is not None and not reading
        # a HALT write (and pymodbus's read-back of it for FC6), or a read of HALT alone (the halt link probe),
        # is never delayed nor refused
        if reading:
            halt_path = function_code == _FC_READ_HR and address == rm.HALT.address and count == 1
        else:
            halt_path = address <= rm.HALT.address < address + count
        if halt_path and set_values is not None:
            t = time.perf_counter()
            if set_values[rm.HALT.address - address]:
                self.halt_times.append(t)
                if self.on_halt is not None:
                    self.on_halt(t)
        if not halt_path:
            if self._exceptions_left > 0:
                self._exceptions_left -= 1
                self.exceptions_sent += 1
                return self._exception_code
            if self._delay_s > 0:
                await self._hold(self._delay_s)
        if function_code == _FC_READ_IR:
            base = 0 - start_address  # the block's list starts at start_address (always 0 here)
            registers[base : base + rm.IR_COUNT] = self._render_inputs()
        elif function_code == _FC_READ_HR:
            base = 0 - start_address
            registers[base : base + rm.HR_COUNT] = self._hr
        elif writing and set_values is not None:
            values = [int(v) for v in set_values]
            if (rc := self._check_write(address, values)) is not None:
                return rc
            self._hr[address : address + len(values)] = values
            registers[address - start_address : address - start_address + len(values)] = values
            self._on_write(address, len(values))
        return None

    async def _hold(self, seconds: float) -> None:
        self.stalled_requests += 1
        try:
            with anyio.move_on_after(seconds):
                await self._unstall.wait()
        finally:
            self.stalled_requests -= 1

    def _render_inputs(self) -> list[int]:
        img = self._img
        img.halt_active = int(self._halt_latched)
        img.suction_kpa = self._pressure_kpa
        img.suction_valve = int(self._valve)
        img.gripper_width_mm = self._gripper.actual
        img.belt_speed_mm_s = self._belt_mm_s
        img.blade_extension_mm = self._blade.actual
        img.hook = int(self._hook)
        regs = img.encode()
        for name, raw in self._forced.items():
            f = rm.field(name)
            regs[f.address : f.address + f.size] = raw
        return regs

    def _check_write(self, address: int, values: list[int]) -> ExcCodes | None:
        """Reject setpoints out of range the way a controller does: ILLEGAL_VALUE."""
        hr = list(self._hr)
        hr[address : address + len(values)] = values
        for f in (rm.HALT, rm.GRIPPER_WIDTH_SP, rm.BELT_SPEED_SP, rm.BLADE_EXT_SP, rm.SUCTION_VALVE_SP, rm.HOOK_SP):
            touched = address < f.address + f.size and f.address < address + len(values)
            if touched and not f.in_range(f.decode(f.slice(hr))):
                return ExcCodes.ILLEGAL_VALUE
        return None

    def _on_write(self, address: int, count: int) -> None:
        now = anyio.current_time()

        def touched(f: rm.Field) -> bool:
            return address < f.address + f.size and f.address < address + count

        hr = self._hr
        if touched(rm.HALT):
            if hr[rm.HALT.address]:
                self._halt(now)
            elif self._halt_latched:
                self._halt_latched = False
                if self._img.status == Status.HALTED:
                    self._img.status, self._img.fault_code = Status.IDLE, FaultCode.NONE
                self.log.info("halt released")
        if touched(rm.HEARTBEAT_CTRL):
            self._ctrl_hb_last_change = now
            if self._ctrl_hb_lost:
                self._ctrl_hb_lost = False
                self.log.info("controller heartbeat back")
        if touched(rm.GRIPPER_WIDTH_SP):
            self._move(self._gripper, rm.GRIPPER_WIDTH_SP.decode(rm.GRIPPER_WIDTH_SP.slice(hr)))
        if touched(rm.BELT_SPEED_SP):
            self._belt_mm_s = rm.BELT_SPEED_SP.decode(rm.BELT_SPEED_SP.slice(hr))
        if touched(rm.BLADE_EXT_SP):
            self._move(self._blade, rm.BLADE_EXT_SP.decode(rm.BLADE_EXT_SP.slice(hr)))
        if touched(rm.SUCTION_VALVE_SP):
            self._valve = bool(hr[rm.SUCTION_VALVE_SP.address])
        if touched(rm.HOOK_SP):
            self._hook = bool(hr[rm.HOOK_SP.address])
        if touched(rm.CMD_SEQ):
            seq = hr[rm.CMD_SEQ.address]
            if seq and seq != self._img.ack:
                self._trigger(seq, now)

    def _move(self, axis: _Axis, target: float, over_s: float | None = None) -> None:
        """Direct setpoints move at the axis's speed; primitives move it over their duration."""
        axis.target = target
        default = self.config.gripper_speed_mm_s if axis is self._gripper else self.config.blade_speed_mm_s
        axis.rate = max(default, abs(target - axis.actual) / over_s) if over_s else default

    # --- primitives -----------------------------------------------------------------------------------------

    def _trigger(self, seq: int, now: float) -> None:
        prim_id, params = rm.decode_command(self._hr)
        self.commands.append((seq, prim_id, params))
        img = self._img
        img.ack, img.active_primitive = seq, prim_id
        if self._running is not None:
            self._stop_motion()
            self._finish(Status.FAULT, FaultCode.BUSY, now)
            return
        code = FaultCode.NONE
        primitive: Primitive | None = None
        if self._halt_latched:
            code = FaultCode.HALTED
        elif self._ctrl_hb_lost:
            code = FaultCode.CONTROLLER_HEARTBEAT_LOST
        else:
            try:
                primitive = Primitive(prim_id)
            except ValueError:
                code = FaultCode.UNKNOWN_PRIMITIVE
            else:
                spec = rm.PRIMITIVE_PARAMS[primitive]
                if any(not (math.isfinite(v) and p.lo <= v <= p.hi) for p, v in zip(spec, params, strict=False)):
                    code = FaultCode.BAD_PARAMETER
        if code or primitive is None:
            img.status = Status.HALTED if code == FaultCode.HALTED else Status.FAULT
            img.fault_code = code
            self.log.info("command rejected", seq=seq, primitive=prim_id, fault=rm.fault_text(code))
            return
        plan = self._plan(primitive, params, now)
        scale = self.config.time_scale
        duration = self.config.duration(primitive) if plan is None else max(0.0, plan.duration_s) * scale
        if primitive is Primitive.ATTACH:
            duration = max(duration, self.config.attach_settle_s)
        run = _Running(primitive, seq, params, deadline=now + duration)
        if plan is not None:
            if plan.stall:
                run.deadline = math.inf
            if plan.fault_at_s is not None:
                run.fault_at, run.fault_code = now + max(0.0, plan.fault_at_s) * scale, plan.fault_code
        if self._stall_next:
            self._stall_next = False
            run.deadline = math.inf
        if self._next_fault is not None:
            run.fault_code, fraction = self._next_fault
            run.fault_at = now + duration * fraction
            self._next_fault = None
        self._running = run
        img.status, img.fault_code = Status.BUSY, FaultCode.NONE
        self._start_effects(run, duration)
        self.log.debug("primitive started", seq=seq, primitive=primitive.name, duration_s=round(duration, 3))

    def _plan(self, primitive: Primitive, params: list[float], now: float) -> PrimitivePlan | None:
        """Ask the model (if any) how this primitive runs; a model that raises faults the primitive."""
        if self.model is None:
            return None
        try:
            return self.model.begin(primitive, list(params), now)
        except Exception:
            self.log.exception("primitive model failed to begin", primitive=primitive.name)
            return PrimitivePlan(0.0, fault_at_s=0.0, fault_code=FaultCode.BAD_PARAMETER)

    def _end_run(self, *, completed: bool, now: float) -> None:
        """Drop the running primitive and tell the model it ended (every path that ends one comes here)."""
        run, self._running = self._running, None
        if run is None or self.model is None:
            return
        try:
            self.model.end(completed, now)
        except Exception:
            self.log.exception("primitive model failed to end", primitive=run.primitive.name)

    def _start_effects(self, run: _Running, duration: float) -> None:
        p, params = run.primitive, run.params
        if p is Primitive.EXTEND_BLADE:
            self._move(self._blade, params[0], duration)
        elif p is Primitive.RETRACT:
            self._move(self._blade, 0.0, duration)
        elif p is Primitive.EJECT_ITEM:
            self._belt_mm_s = params[0]
        elif p is Primitive.GRASP:
            self._move(self._gripper, params[0], duration)
        elif p is Primitive.ATTACH:
            self._valve = True
        elif p in (Primitive.PLACE, Primitive.RELEASE):
            self._valve = False
            self._move(self._gripper, 80.0, duration)
        elif p is Primitive.OPEN_BAND:
            self._hook = False
        elif p is Primitive.CLOSE_BAND:
            self._hook = True
        elif p is Primitive.HALT:
            self._stop_motion()

    def _complete(self, run: _Running, now: float) -> None:
        if run.primitive is Primitive.EJECT_ITEM:
            self._belt_mm_s = 0.0
        if run.primitive is Primitive.ATTACH and self._pressure_kpa > run.params[0]:
            self._finish(Status.FAULT, FaultCode.SUCTION_NOT_REACHED, now)
            return
        self._finish(Status.DONE, FaultCode.NONE, now)

    def _finish(self, status: Status, code: int, now: float) -> None:
        run = self._running
        self._img.status, self._img.fault_code = status, code
        if run is not None:
            self.log.debug(
                "primitive finished", seq=run.seq, primitive=run.primitive.name, status=status.name, fault=int(code)
            )
        self._end_run(completed=status is Status.DONE, now=now)

    def _stop_motion(self) -> None:
        """Stop belt and axes where they are (suction stays: a held item must not drop)."""
        self._belt_mm_s = 0.0
        self._gripper.target = self._gripper.actual
        self._blade.target = self._blade.actual

    def _halt(self, now: float) -> None:
        self._halt_latched = True
        self._stop_motion()
        self._end_run(completed=False, now=now)
        self._img.status, self._img.fault_code = Status.HALTED, FaultCode.HALTED
        self.log.info("halt", t=now)


# --- Modbus TCP server ---------------------------------------------------------------------------------------------

_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length (unit id + PDU), unit id
_MAX_LENGTH = 254  # unit id + function code + 252 bytes of data (a 260-byte ADU)
_MAX_IN_FLIGHT = 1024  # requests of one connection being answered at once; beyond it the socket is not read


class _StrictModbusTcpServer(ModbusTcpServer):
    """pymodbus's TCP server with a request handler that frames the stream like a real controller.

    pymodbus 3.x decodes one frame per received segment (the rest waits for the next segment, which may never
    come), drops a receive buffer over 264 bytes whole (500 pipelined requests: not one answered), clears it on
    every send, keeps one `last_pdu` per connection (a held request's answer could take another's transaction
    id), and answers a foreign unit id with an exception (and a traceback in the log).
    """

    def __init__(self, device: SimDevice, *, address: tuple[str, int], unit_id: int) -> None:
        super().__init__(device, address=address)
        self.unit_id = unit_id

    def callback_new_connection(self) -> _StrictRequestHandler:
        return _StrictRequestHandler(self)


class _StrictRequestHandler(ServerRequestHandler):
    """One client connection: answers every complete MBAP frame for our unit id, each in its own task."""

    def __init__(self, owner: _StrictModbusTcpServer) -> None:
        super().__init__(owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect)
        self._unit_id = owner.unit_id
        self._inbox = b""
        self._answering: set[asyncio.Task[None]] = set()
        self._paused = False

    def data_received(self, data: bytes) -> None:
        buf = self._inbox + data
        pos = 0
        while len(buf) - pos >= _MBAP.size:
            tid, protocol, length, unit = _MBAP.unpack_from(buf, pos)
            if protocol != 0 or not 2 <= length <= _MAX_LENGTH:
                # not Modbus TCP: no frame boundary can be trusted after this, so drop the connection
                structlog.get_logger("sim.robot").warning(
                    "not an MBAP frame: closing the connection", protocol_id=protocol, length=length
                )
                self._inbox = b""
                if self.transport:
                    self.transport.close()
                return
            end = pos + 6 + length
            if end > len(buf):
                break  # the rest of this frame is still on its way
            pdu = buf[pos + _MBAP.size : end]
            pos = end
            if unit == self._unit_id:  # a frame for another unit is not ours to answer
                self._accept(tid, unit, pdu)
        self._inbox = buf[pos:]

    def _accept(self, tid: int, unit: int, frame: bytes) -> None:
        function_code = frame[0]
        request = None if function_code & 0x80 else self.server.decoder.decode(frame)
        if request is None:
            # a function this controller implements, with a malformed body; or one it does not implement
            known = function_code in self.server.decoder.pdu_table
            code = ExcCodes.ILLEGAL_VALUE if known else ExcCodes.ILLEGAL_FUNCTION
            self._send(ExceptionResponse(function_code & 0x7F, code), tid, unit)
            return
        task = self.loop.create_task(self._answer(request, tid, unit))
        self._answering.add(task)
        task.add_done_callback(self._answered)
        if len(self._answering) >= _MAX_IN_FLIGHT and self.transport and not self._paused:
            self._paused = True
            self.transport.pause_reading()  # type: ignore[attr-defined]

    def _answered(self, task: asyncio.Task[None]) -> None:
        self._answering.discard(task)
        if self._paused and len(self._answering) < _MAX_IN_FLIGHT // 2 and self.transport:
            self._paused = False
            self.transport.resume_reading()  # type: ignore[attr-defined]

    async def _answer(self, request: ModbusPDU, tid: int, unit: int) -> None:
        try:
            response = await request.datastore_update(self.server.context, unit)
        except Exception as exc:  # a datastore bug must not kill the connection: answer like a failed device
            structlog.get_logger("sim.robot").error(
                "request failed", function_code=request.function_code, error=f"{type(exc).__name__}: {exc}"
            )
            response = ExceptionResponse(request.function_code, ExcCodes.DEVICE_FAILURE)
        self._send(response, tid, unit)

    def _send(self, response: ModbusPDU, tid: int, unit: int) -> None:
        if not self.transport or self.transport.is_closing():
            return  # the client went away while the request was being answered
        response.transaction_id, response.dev_id = tid, unit
        self.transport.write(self.framer.buildFrame(response))  # type: ignore[attr-defined]

    def callback_disconnected(self, exc: Exception | None) -> None:
        for task in list(self._answering):
            task.cancel()
        super().callback_disconnected(exc)
