"""The robot controller's Modbus TCP register map, as code (shared by `drivers.robot` and `drivers.sim.robot`).

`docs/register-map.md` documents the same map; `tests/drivers/test_robot.py` checks the two agree.

Conventions: addresses are 0-based PDU addresses. Holding registers (FC3 read, FC6/FC16 write) carry
controller -> robot commands and setpoints; input registers (FC4) carry robot -> controller state.
float32 values occupy two registers, big-endian, high word first ("ABCD"). int16 values are two's
complement. Scaled values: engineering value = raw * scale.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

Table = Literal["hr", "ir"]
Kind = Literal["uint16", "int16", "float32"]


@dataclass(frozen=True, slots=True)
class Field:
    """One value in the map: where it lives, how it is encoded, what it means."""

    name: str
    table: Table
    address: int
    kind: Kind
    unit: str
    meaning: str
    scale: float = 1.0
    lo: float = -math.inf
    hi: float = math.inf

    @property
    def size(self) -> int:
        return 2 if self.kind == "float32" else 1

    @property
    def access(self) -> str:
        return "R/W" if self.table == "hr" else "R"

    def in_range(self, value: float) -> bool:
        return math.isfinite(value) and self.lo <= value <= self.hi

    def encode(self, value: float) -> list[int]:
        """Engineering value -> registers (no range check; callers validate first)."""
        if self.kind == "float32":
            return encode_f32(value)
        raw = round(value / self.scale)
        if self.kind == "int16":
            return [encode_i16(raw)]
        return [encode_u16(raw)]

    def decode(self, regs: Sequence[int]) -> float:
        """Registers -> engineering value (may be NaN/out of range: callers validate)."""
        if self.kind == "float32":
            return decode_f32(regs[0], regs[1])
        raw = decode_i16(regs[0]) if self.kind == "int16" else regs[0] & 0xFFFF
        return raw * self.scale

    def slice(self, regs: Sequence[int], base: int = 0) -> Sequence[int]:
        """This field's registers out of a block read starting at `base`."""
        start = self.address - base
        return regs[start : start + self.size]


# --- primitive encoding helpers -------------------------------------------------------------------------------


def encode_u16(value: int) -> int:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"uint16 out of range: {value}")
    return value


def encode_i16(value: int) -> int:
    if not -0x8000 <= value <= 0x7FFF:
        raise ValueError(f"int16 out of range: {value}")
    return value & 0xFFFF


def decode_i16(reg: int) -> int:
    reg &= 0xFFFF
    return reg - 0x10000 if reg & 0x8000 else reg


def encode_f32(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def decode_f32(hi: int, lo: int) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", hi & 0xFFFF, lo & 0xFFFF))[0])


def next_seq(seq: int) -> int:
    """The command sequence number after `seq`: 1..65535, wrapping, never 0."""
    return seq % 0xFFFF + 1


# --- enumerations -------------------------------------------------------------------------------------------


class Primitive(IntEnum):
    """Primitive ids written to CMD_PRIMITIVE."""

    APPROACH = 1
    EXTEND_BLADE = 2
    SWEEP = 3
    EJECT_ITEM = 4
    RETRACT = 5
    OPEN_BAND = 6
    CLOSE_BAND = 7
    GRASP = 8
    ATTACH = 9
    EXTRACT = 10
    PLACE = 11
    HALT = 12
    RELEASE = 13

    @classmethod
    def parse(cls, value: Primitive | str | int) -> Primitive:
        if isinstance(value, Primitive):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                known = ", ".join(p.name.lower() for p in cls)
                raise ValueError(f"unknown primitive {value!r}; known: {known}") from None
        return cls(value)


class Status(IntEnum):
    """Robot status (IR STATUS)."""

    IDLE = 0
    BUSY = 1
    DONE = 2
    FAULT = 3
    HALTED = 4


class FaultCode(IntEnum):
    """Fault codes. 1..0x7FFF come from the robot (IR FAULT_CODE); 0x8000.. are raised by the driver itself."""

    NONE = 0
    UNKNOWN_PRIMITIVE = 1
    BAD_PARAMETER = 2
    HALTED = 3
    CONTROLLER_HEARTBEAT_LOST = 4
    BUSY = 5
    COLLISION = 10
    BLADE_JAM = 11
    GRASP_FAILED = 12
    SUCTION_NOT_REACHED = 13
    BAND_HOOK_FAULT = 14
    WORKSPACE_LIMIT = 15
    SERVO_FAULT = 16
    # driver-side (never on the wire)
    NOT_CONNECTED = 0x8001
    PEER_HEARTBEAT_LOST = 0x8002
    COMM_ERROR = 0x8003
    DRIVER_BUSY = 0x8004


FAULT_TEXT: dict[int, str] = {
    FaultCode.NONE: "no fault",
    FaultCode.UNKNOWN_PRIMITIVE: "unknown primitive id",
    FaultCode.BAD_PARAMETER: "parameter out of range or not finite",
    FaultCode.HALTED: "halted (stop command)",
    FaultCode.CONTROLLER_HEARTBEAT_LOST: "controller heartbeat lost",
    FaultCode.BUSY: "command received while busy; running primitive aborted",
    FaultCode.COLLISION: "collision detected",
    FaultCode.BLADE_JAM: "blade jam",
    FaultCode.GRASP_FAILED: "grasp failed (no object between fingers)",
    FaultCode.SUCTION_NOT_REACHED: "suction did not reach the attach vacuum",
    FaultCode.BAND_HOOK_FAULT: "band-arm hook did not reach position",
    FaultCode.WORKSPACE_LIMIT: "target outside the workspace",
    FaultCode.SERVO_FAULT: "servo fault (drive or encoder)",
    FaultCode.NOT_CONNECTED: "not connected to the robot controller",
    FaultCode.PEER_HEARTBEAT_LOST: "robot heartbeat lost",
    FaultCode.COMM_ERROR: "Modbus communication error",
    FaultCode.DRIVER_BUSY: "another primitive is already executing",
}


def fault_text(code: int) -> str:
    return FAULT_TEXT.get(code, f"unknown fault code {code} (0x{code:04x})")


# --- holding registers (controller -> robot) ---------------------------------------------------------------

N_PARAMS = 8
CMD_PRIMITIVE = Field("CMD_PRIMITIVE", "hr", 0, "uint16", "id", "primitive id (table Primitive)", lo=0, hi=0xFFFF)
PARAM_BASE = 1
PARAMS = tuple(
    Field(f"CMD_P{i}", "hr", PARAM_BASE + 2 * i, "float32", "per primitive", f"primitive parameter {i}")
    for i in range(N_PARAMS)
)
CMD_SEQ = Field(
    "CMD_SEQ", "hr", 17, "uint16", "count",
    "command sequence number, 1..65535 wrapping; written last, a change triggers the command", lo=1, hi=0xFFFF,
)  # fmt: skip
HEARTBEAT_CTRL = Field(
    "HEARTBEAT_CTRL", "hr", 18, "uint16", "count", "controller heartbeat, +1 every heartbeat period", lo=0, hi=0xFFFF
)
HALT = Field("HALT", "hr", 19, "uint16", "0/1", "stop: 1 halts now and latches; 0 releases the latch", lo=0, hi=1)
GRIPPER_WIDTH_SP = Field("GRIPPER_WIDTH_SP", "hr", 20, "float32", "mm", "gripper opening setpoint", lo=0.0, hi=120.0)
BELT_SPEED_SP = Field("BELT_SPEED_SP", "hr", 22, "int16", "mm/s", "EOAT belt speed setpoint, + ejects", lo=-500, hi=500)
BLADE_EXT_SP = Field(
    "BLADE_EXT_SP", "hr", 23, "uint16", "mm (raw x 0.1)", "blade extension setpoint", scale=0.1, lo=0.0, hi=300.0
)
SUCTION_VALVE_SP = Field("SUCTION_VALVE_SP", "hr", 24, "uint16", "0/1", "suction valve: 1 = open/vacuum", lo=0, hi=1)
HOOK_SP = Field("HOOK_SP", "hr", 25, "uint16", "0/1", "band-arm hook: 1 = closed (band held)", lo=0, hi=1)

HR_FIELDS: tuple[Field, ...] = (
    CMD_PRIMITIVE, *PARAMS, CMD_SEQ, HEARTBEAT_CTRL, HALT,
    GRIPPER_WIDTH_SP, BELT_SPEED_SP, BLADE_EXT_SP, SUCTION_VALVE_SP, HOOK_SP,
)  # fmt: skip
HR_COUNT = 26  # HR 0..25

# --- input registers (robot -> controller) -----------------------------------------------------------------

STATUS = Field("STATUS", "ir", 0, "uint16", "enum", "robot status (table Status)", lo=0, hi=4)
ACK = Field("ACK", "ir", 1, "uint16", "count", "last CMD_SEQ accepted (echo)", lo=0, hi=0xFFFF)
FAULT_CODE = Field("FAULT_CODE", "ir", 2, "uint16", "enum", "fault code (table FaultCode), 0 = none", lo=0, hi=0x7FFF)
ACTIVE_PRIMITIVE = Field("ACTIVE_PRIMITIVE", "ir", 3, "uint16", "id", "primitive of the last command", lo=0, hi=0xFFFF)
HEARTBEAT_ROBOT = Field("HEARTBEAT_ROBOT", "ir", 4, "uint16", "count", "robot heartbeat, +1 / 50 ms", lo=0, hi=0xFFFF)
HALT_ACTIVE = Field("HALT_ACTIVE", "ir", 5, "uint16", "0/1", "halt latch state", lo=0, hi=1)
SUCTION_KPA = Field(
    "SUCTION_KPA", "ir", 6, "int16", "kPa (raw x 0.1)", "suction cup gauge pressure (negative = vacuum)",
    scale=0.1, lo=-101.3, hi=50.0,
)  # fmt: skip
SUCTION_VALVE = Field("SUCTION_VALVE", "ir", 7, "uint16", "0/1", "suction valve actual", lo=0, hi=1)
GRIPPER_WIDTH = Field("GRIPPER_WIDTH", "ir", 8, "float32", "mm", "gripper opening actual", lo=0.0, hi=120.0)
BELT_SPEED = Field("BELT_SPEED", "ir", 10, "int16", "mm/s", "EOAT belt speed actual", lo=-500, hi=500)
BLADE_EXT = Field("BLADE_EXT", "ir", 11, "uint16", "mm (raw x 0.1)", "blade extension actual", scale=0.1, lo=0, hi=300)
HOOK = Field("HOOK", "ir", 12, "uint16", "0/1", "band-arm hook actual (1 = closed)", lo=0, hi=1)

IR_FIELDS: tuple[Field, ...] = (
    STATUS, ACK, FAULT_CODE, ACTIVE_PRIMITIVE, HEARTBEAT_ROBOT, HALT_ACTIVE,
    SUCTION_KPA, SUCTION_VALVE, GRIPPER_WIDTH, BELT_SPEED, BLADE_EXT, HOOK,
)  # fmt: skip
IR_COUNT = 13  # IR 0..12, read in one FC4 by the driver's poll


def field(name: str) -> Field:
    for f in (*HR_FIELDS, *IR_FIELDS):
        if f.name == name:
            return f
    raise KeyError(name)


# --- primitive parameters -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    unit: str
    default: float
    lo: float
    hi: float


_XYZ = (
    Param("x", "mm", 0.0, -2000.0, 2000.0),
    Param("y", "mm", 0.0, -2000.0, 2000.0),
    Param("z", "mm", 500.0, -500.0, 2500.0),
    Param("yaw", "deg", 0.0, -180.0, 180.0),
)
_SPEED = Param("speed_scale", "1", 0.5, 0.01, 1.0)

PRIMITIVE_PARAMS: dict[Primitive, tuple[Param, ...]] = {
    Primitive.APPROACH: (*_XYZ, _SPEED),
    Primitive.EXTEND_BLADE: (Param("extension", "mm", 250.0, 0.0, 300.0), _SPEED),
    Primitive.SWEEP: (
        Param("distance", "mm", 300.0, 0.0, 800.0), Param("speed", "mm/s", 200.0, 1.0, 1000.0),
        Param("x", "mm", 0.0, -2000.0, 2000.0), Param("y_lo", "mm", 0.0, -2000.0, 2000.0),
        Param("y_hi", "mm", 0.0, -2000.0, 2000.0), Param("direction", "1", 1.0, -1.0, 1.0),
    ),
    Primitive.EJECT_ITEM: (Param("belt_speed", "mm/s", 300.0, -500.0, 500.0),),
    Primitive.RETRACT: (_SPEED,),
    Primitive.OPEN_BAND: (),
    Primitive.CLOSE_BAND: (),
    Primitive.GRASP: (Param("width", "mm", 40.0, 0.0, 120.0), Param("force", "N", 30.0, 0.0, 200.0)),
    Primitive.ATTACH: (Param("vacuum", "kPa", -50.0, -95.0, -5.0),),
    Primitive.EXTRACT: (Param("distance", "mm", 250.0, 0.0, 600.0), _SPEED),
    Primitive.PLACE: (*_XYZ, _SPEED),
    Primitive.HALT: (),
    Primitive.RELEASE: (),
}


def resolve_params(primitive: Primitive, params: Sequence[float] | Mapping[str, float] = ()) -> list[float]:
    """Positional or named parameters -> the full validated list for `primitive` (defaults filled in).

    Raises ValueError for unknown names, too many values, NaN/inf or out-of-range values.
    """
    spec = PRIMITIVE_PARAMS[primitive]
    values = [p.default for p in spec]
    if isinstance(params, Mapping):
        names = {p.name: i for i, p in enumerate(spec)}
        for name, value in params.items():
            if name not in names:
                takes = list(names) or "none"
                raise ValueError(f"{primitive.name.lower()} has no parameter {name!r}; it takes {takes}")
            values[names[name]] = float(value)
    else:
        if len(params) > len(spec):
            raise ValueError(f"{primitive.name.lower()} takes {len(spec)} parameters, got {len(params)}")
        for i, value in enumerate(params):
            values[i] = float(value)
    for p, value in zip(spec, values, strict=True):
        if not math.isfinite(value) or not p.lo <= value <= p.hi:
            raise ValueError(f"{primitive.name.lower()}.{p.name} = {value} {p.unit} outside [{p.lo}, {p.hi}]")
    return values


def encode_command(primitive: Primitive, params: Sequence[float]) -> list[int]:
    """HR CMD_PRIMITIVE .. CMD_P7 (17 registers); unused parameters are 0.0."""
    if len(params) > N_PARAMS:
        raise ValueError(f"at most {N_PARAMS} parameters")
    regs = [int(primitive)]
    for i in range(N_PARAMS):
        regs += encode_f32(params[i] if i < len(params) else 0.0)
    return regs


def decode_command(hr: Sequence[int]) -> tuple[int, list[float]]:
    """The command block (HR from address 0) -> (primitive id, the 8 parameters)."""
    return hr[CMD_PRIMITIVE.address], [p.decode(p.slice(hr)) for p in PARAMS]


# --- input image --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class InputImage:
    """The input registers IR 0..IR_COUNT-1 as raw-decoded values (unvalidated: floats may be NaN)."""

    status: int = Status.IDLE
    ack: int = 0
    fault_code: int = 0
    active_primitive: int = 0
    heartbeat: int = 0
    halt_active: int = 0
    suction_kpa: float = 0.0
    suction_valve: int = 0
    gripper_width_mm: float = 0.0
    belt_speed_mm_s: float = 0.0
    blade_extension_mm: float = 0.0
    hook: int = 0

    _FIELDS = (
        ("status", STATUS), ("ack", ACK), ("fault_code", FAULT_CODE), ("active_primitive", ACTIVE_PRIMITIVE),
        ("heartbeat", HEARTBEAT_ROBOT), ("halt_active", HALT_ACTIVE), ("suction_kpa", SUCTION_KPA),
        ("suction_valve", SUCTION_VALVE), ("gripper_width_mm", GRIPPER_WIDTH), ("belt_speed_mm_s", BELT_SPEED),
        ("blade_extension_mm", BLADE_EXT), ("hook", HOOK),
    )  # fmt: skip

    def encode(self) -> list[int]:
        regs = [0] * IR_COUNT
        for attr, f in self._FIELDS:
            value = getattr(self, attr)
            if f.kind != "float32":
                # clamp to what the register can hold (the sim never sends garbage unless told to)
                raw = round(value / f.scale)
                raw = max(-0x8000, min(0x7FFF, raw)) if f.kind == "int16" else max(0, min(0xFFFF, raw))
                value = raw * f.scale
            regs[f.address : f.address + f.size] = f.encode(value)
        return regs

    @classmethod
    def decode(cls, regs: Sequence[int]) -> InputImage:
        if len(regs) < IR_COUNT:
            raise ValueError(f"input image needs {IR_COUNT} registers, got {len(regs)}")
        img = cls()
        for attr, f in cls._FIELDS:
            value = f.decode(f.slice(regs))
            setattr(img, attr, value if f.kind == "float32" or f.scale != 1.0 else int(value))
        return img
