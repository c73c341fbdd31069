"""PLC node map (configuration) and the typed values the stow-station PLC publishes.

Every NodeId the driver touches comes from `PlcNodeMap`; the defaults match the
simulated PLC in `drivers/sim/plc.py`. NodeIds are OPC UA strings: `ns=<index>;...`
or, preferred, `nsu=<namespace uri>;...`, which the driver resolves against the
server's namespace array at each connect (indices may shift when a PLC program changes).

Data contract with the PLC (stow-station conveyor):
- `Conveyor.ArrivalSeq` (UInt32): sequence number of the newest arrival, monotonically
  increasing; written *after* the log below, so it is only a trigger.
- `Conveyor.ArrivalLog` (String[]): the most recent arrivals, one JSON object each
  (`ItemArrival` fields), oldest first. The driver publishes every record whose seq
  is above the last one it delivered, so nothing is missed or repeated across reconnects.
- `Pod.PodSeq` (UInt32): pod generation; the PLC writes 0 while it updates PodId/Face/
  BinLayout and the new (higher) generation when they are consistent.
- `Interlocks.*` (Boolean): True means the interlock is tripped (unsafe).
"""

from __future__ import annotations

from typing import Annotated, Literal

from asyncua import ua
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

SIM_NAMESPACE = "urn:cellctl:sim:plc"


def _check_nodeid(value: str) -> str:
    try:
        ua.NodeId.from_string(value)
    except Exception as exc:  # asyncua raises UaStringParsingError (and friends) for malformed ids
        raise ValueError(f"not an OPC UA NodeId string: {value!r} ({exc})") from None
    return value


NodeIdStr = Annotated[str, AfterValidator(_check_nodeid)]


def _sim(path: str) -> str:
    return f"nsu={SIM_NAMESPACE};s=StowStation.{path}"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Value(BaseModel):
    # data from the PLC: fields a newer PLC program adds are ignored, missing/invalid ones rejected
    model_config = ConfigDict(frozen=True, extra="ignore")


# ---------------------------------------------------------------------------- node map


class ConveyorNodes(_Frozen):
    arrival_seq: NodeIdStr = _sim("Conveyor.ArrivalSeq")
    arrival_log: NodeIdStr = _sim("Conveyor.ArrivalLog")
    index_count: NodeIdStr = _sim("Conveyor.IndexCount")
    speed_setpoint: NodeIdStr = _sim("Conveyor.SpeedSetpoint")


class PodNodes(_Frozen):
    pod_seq: NodeIdStr = _sim("Pod.PodSeq")
    pod_id: NodeIdStr = _sim("Pod.PodId")
    face: NodeIdStr = _sim("Pod.Face")
    bin_layout: NodeIdStr = _sim("Pod.BinLayout")


class InterlockNodes(_Frozen):
    estop_active: NodeIdStr = _sim("Interlocks.EStopActive")
    light_curtain_broken: NodeIdStr = _sim("Interlocks.LightCurtainBroken")
    door_open: NodeIdStr = _sim("Interlocks.DoorOpen")


class MethodRef(_Frozen):
    """A method and the object it is called on."""

    object_id: NodeIdStr
    method_id: NodeIdStr


class MethodNodes(_Frozen):
    acknowledge_item: MethodRef = MethodRef(object_id=_sim("Conveyor"), method_id=_sim("Conveyor.AcknowledgeItem"))
    index_conveyor: MethodRef = MethodRef(object_id=_sim("Conveyor"), method_id=_sim("Conveyor.IndexConveyor"))


class PlcNodeMap(_Frozen):
    """All NodeIds of the station PLC. `extra` adds named variables for `read`/`write`."""

    conveyor: ConveyorNodes = ConveyorNodes()
    pod: PodNodes = PodNodes()
    interlocks: InterlockNodes = InterlockNodes()
    methods: MethodNodes = MethodNodes()
    extra: dict[str, NodeIdStr] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_shadowing(self) -> PlcNodeMap:
        clash = set(self.extra) & set(self._builtin_variables())
        if clash:
            raise ValueError(f"extra variables shadow built-in names: {sorted(clash)}")
        return self

    def _builtin_variables(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for group in ("conveyor", "pod", "interlocks"):
            for field, nodeid in getattr(self, group).model_dump().items():
                out[f"{group}.{field}"] = nodeid
        return out

    def variables(self) -> dict[str, str]:
        """Every readable/writable name (`group.field` or an `extra` key) -> NodeId string."""
        return {**self._builtin_variables(), **self.extra}

    def variable(self, name: str) -> str:
        names = self.variables()
        if name not in names:
            raise KeyError(f"unknown PLC variable {name!r}; known: {sorted(names)}")
        return names[name]

    def method(self, name: str) -> MethodRef:
        names = MethodNodes.model_fields
        if name not in names:
            raise KeyError(f"unknown PLC method {name!r}; known: {sorted(names)}")
        ref: MethodRef = getattr(self.methods, name)
        return ref


# ---------------------------------------------------------------------------- values

Mm = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ItemArrival(_Value):
    """One item arriving at the stow station on the conveyor."""

    seq: int = Field(ge=1)
    item_id: str = Field(min_length=1)
    length_mm: Mm
    width_mm: Mm
    height_mm: Mm
    weight_kg: float = Field(ge=0, allow_inf_nan=False)

    def to_json(self) -> str:
        return self.model_dump_json()


class InterlockState(_Value):
    """Safety interlocks; each True means tripped."""

    estop_active: bool
    light_curtain_broken: bool
    door_open: bool

    @property
    def clear(self) -> bool:
        """True when nothing is tripped (motion may be permitted)."""
        return not (self.estop_active or self.light_curtain_broken or self.door_open)


InterlockName = Literal["estop_active", "light_curtain_broken", "door_open"]
INTERLOCK_NAMES: tuple[InterlockName, ...] = ("estop_active", "light_curtain_broken", "door_open")


class BinSpec(_Value):
    row: int = Field(ge=0)
    column: int = Field(ge=0)
    width_mm: Mm
    height_mm: Mm
    depth_mm: Mm


class BinLayout(_Value):
    """Bins of one pod face, addressed by (row, column); row 0 is the bottom row."""

    rows: int = Field(ge=1, le=64)
    columns: int = Field(ge=1, le=64)
    bins: tuple[BinSpec, ...]

    @model_validator(mode="after")
    def _grid(self) -> BinLayout:
        seen: set[tuple[int, int]] = set()
        for b in self.bins:
            if b.row >= self.rows or b.column >= self.columns:
                raise ValueError(f"bin ({b.row}, {b.column}) lies outside the {self.rows}x{self.columns} grid")
            if (b.row, b.column) in seen:
                raise ValueError(f"bin ({b.row}, {b.column}) listed twice")
            seen.add((b.row, b.column))
        if len(seen) != self.rows * self.columns:
            raise ValueError(
                f"layout lists {len(seen)} bins, a {self.rows}x{self.columns} grid needs {self.rows * self.columns}"
            )
        return self

    @classmethod
    def uniform(cls, rows: int, columns: int, width_mm: float, height_mm: float, depth_mm: float) -> BinLayout:
        bins = tuple(
            BinSpec(row=r, column=c, width_mm=width_mm, height_mm=height_mm, depth_mm=depth_mm)
            for r in range(rows)
            for c in range(columns)
        )
        return cls(rows=rows, columns=columns, bins=bins)

    @classmethod
    def from_json(cls, text: str) -> BinLayout:
        """Parse the PLC's BinLayout string; raises ValueError on bad JSON or a bad layout."""
        return cls.model_validate_json(text)


PodFace = Literal["A", "B", "C", "D"]


class PodState(_Value):
    """The pod presented at the station: which pod, which face, and its bins."""

    seq: int = Field(ge=1)
    pod_id: str = Field(min_length=1)
    face: PodFace
    layout: BinLayout


def parse_arrival(text: str) -> ItemArrival:
    """Parse one ArrivalLog record; raises ValueError (pydantic's ValidationError) when malformed."""
    return ItemArrival.model_validate_json(text)
