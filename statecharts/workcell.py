"""The `Workcell` port: everything the cell charts may ask of the cell, and the messages that cross it.

The charts never touch a socket (design.md). They await these methods from activities and post the
outcome as an event. cellctl implements the port over the real drivers (`cellctl run`), over the
in-process simulated cell on virtual time (`cellctl sim`), and over a recorded event log (`cellctl replay`).
Every message is a frozen pydantic model: validated where it is made, JSON on the event log, with a JSON
schema per channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Eligibility",
    "EligibilityClass",
    "Interlocks",
    "ItemArrival",
    "Motion",
    "MotionOutcome",
    "MotionResult",
    "PickCandidate",
    "PickOrder",
    "PickPlan",
    "Primitive",
    "StowOption",
    "StowPlan",
    "SweepPlan",
    "TaskOutcome",
    "TaskReport",
    "Verification",
    "Workcell",
]


class Message(BaseModel):
    """Frozen, no unknown fields, finite numbers only (the log is JSON: inf and NaN would not survive)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Primitive(StrEnum):
    """Robot primitives, by the names of the register map (`docs/register-map.md`)."""

    APPROACH = "approach"
    EXTEND_BLADE = "extend_blade"
    SWEEP = "sweep"
    EJECT_ITEM = "eject_item"
    RETRACT = "retract"
    OPEN_BAND = "open_band"
    CLOSE_BAND = "close_band"
    GRASP = "grasp"
    ATTACH = "attach"
    EXTRACT = "extract"
    PLACE = "place"
    RELEASE = "release"


class Motion(Message):
    """One primitive for the main arm, with its guards.

    ``force_limit_n``: the reflex halts the arm when the F/T force magnitude exceeds it, then backs off
    ``backoff_mm``. ``vacuum_kpa``: for ``attach``, the gauge pressure (negative) that counts as attached;
    during other motions, the arm halts (``suction_lost``) when pressure rises above it. ``max_scene_change``:
    halt (``scene_changed``) when the fraction of moved pixels between 10 Hz depth frames exceeds it.
    """

    primitive: Primitive
    params: dict[str, float] = Field(default_factory=dict)
    timeout_s: float = Field(gt=0.0, le=600.0)
    force_limit_n: float | None = Field(None, gt=0.0, le=500.0)
    backoff_mm: float = Field(0.0, ge=0.0, le=200.0)
    vacuum_kpa: float | None = Field(None, gt=-101.325, lt=0.0)
    max_scene_change: float | None = Field(None, gt=0.0, le=1.0)


class MotionOutcome(StrEnum):
    DONE = "done"
    FORCE_LIMIT = "force_limit"  # the reflex halted the arm (and backed off)
    SUCTION_LOST = "suction_lost"  # vacuum lost during a move holding an item
    NO_VACUUM = "no_vacuum"  # attach did not reach the threshold in time
    SCENE_CHANGED = "scene_changed"  # depth frames showed the bin contents moving
    FAULT = "fault"  # the robot reported a fault
    TIMEOUT = "timeout"  # no completion within timeout_s (the arm was halted)
    UNAVAILABLE = "unavailable"  # robot not connected or halted; nothing was started


class MotionResult(Message):
    outcome: MotionOutcome
    elapsed_s: float = Field(ge=0.0)
    peak_force_n: float = Field(0.0, ge=0.0)
    fault_code: int = 0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is MotionOutcome.DONE


class ItemArrival(Message):
    """An item delivered by the conveyor (dimensions and weight from the FC's catalogue)."""

    item_id: str = Field(min_length=1, max_length=64)
    sku: str = Field("", max_length=64)
    width_mm: float = Field(gt=0.0, le=2000.0)
    height_mm: float = Field(gt=0.0, le=2000.0)
    depth_mm: float = Field(gt=0.0, le=2000.0)
    mass_kg: float = Field(gt=0.0, le=50.0)


class PickOrder(Message):
    order_id: str = Field(min_length=1, max_length=64)
    item_id: str = Field(min_length=1, max_length=64)
    bin_id: str = Field(min_length=1, max_length=64)
    # The product (its catalogue entry: reference images to match); "" when the FC names none.
    product_id: str = Field("", max_length=64)


class SweepPlan(Message):
    """Blade entry and push, with the force the push is predicted to need."""

    entry_x_mm: float
    entry_y_mm: float
    direction: Literal[-1, 1]  # -1: push toward the left wall, +1: toward the right wall
    distance_mm: float = Field(gt=0.0)
    predicted_force_n: float = Field(ge=0.0)
    force_limit_n: float = Field(gt=0.0)
    tip: bool = False  # blade enters horizontally and tips an upright item 90 degrees


class StowOption(Message):
    """A placement in a bin and the motions that put the item there (band handled by the chart)."""

    bin_id: str = Field(min_length=1)
    placement_index: int = Field(ge=0)
    x_mm: float
    y_mm: float
    rotated: bool = False
    sweep: SweepPlan | None = None
    steps: tuple[Motion, ...] = Field(min_length=1)


class StowPlan(Message):
    """Options ranked best first (empty with a reason when nothing fits)."""

    options: tuple[StowOption, ...] = ()
    reason: str = ""


class Verification(Message):
    ok: bool
    detail: str = ""


class EligibilityClass(StrEnum):
    FREE = "free"
    BELOW = "below"  # under other items
    BLOCKED = "blocked"  # behind other items
    NOT_ITEM = "not_item"
    NOT_FOUND = "not_found"
    NOT_RECOGNISED = "not_recognised"  # no segment matches the product's reference images


class Eligibility(Message):
    eligible: bool
    cls: EligibilityClass
    detail: str = ""


class PickCandidate(Message):
    index: int = Field(ge=0)
    clearance_mm: float
    area_mm2: float = Field(ge=0.0)
    steps: tuple[Motion, ...] = Field(min_length=1)


class PickPlan(Message):
    candidates: tuple[PickCandidate, ...] = ()
    reason: str = ""


class TaskOutcome(StrEnum):
    DONE = "done"
    HANDOFF = "handoff"
    FAULT = "fault"


class TaskReport(Message):
    """The result of one stow or pick, delivered to the FC exactly once."""

    task_id: str = Field(min_length=1)
    task: Literal["stow", "pick"]
    outcome: TaskOutcome
    reason: str = ""
    item_id: str = ""
    bin_id: str = ""
    attempts: int = Field(0, ge=0)
    started_s: float
    ended_s: float


class Interlocks(Message):
    """Safety inputs from the PLC: the cell may move only while ``ok``."""

    ok: bool
    detail: str = ""


@runtime_checkable
class Workcell(Protocol):
    """What the charts may do. Every call either returns a result or raises only on a programming error:
    device trouble comes back as an outcome (``MotionOutcome``) or ``None`` (nothing arrived in time)."""

    async def next_item(self, timeout_s: float) -> ItemArrival | None:
        """The next conveyor arrival, or None when none came within the timeout."""
        ...

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        """The next pick order from the FC, or None."""
        ...

    async def move(self, motion: Motion) -> MotionResult:
        """Run one main-arm primitive under its guards; cancelling the call halts the arm."""
        ...

    async def set_hook(self, down: bool, timeout_s: float) -> MotionResult:
        """The second arm's hook: ``down`` holds the band open, ``False`` lets it close."""
        ...

    async def plan_stow(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        """Capture the pod's bins, choose bins and placements (sweeps where space is fragmented)."""
        ...

    async def verify_stow(self, item: ItemArrival, option: StowOption) -> Verification:
        """A new depth frame of the bin: is the item there?"""
        ...

    async def check_pick(self, order: PickOrder) -> Eligibility:
        ...

    async def plan_pick(self, order: PickOrder) -> PickPlan:
        """Capture, segment, identify the target and rank suction candidates."""
        ...

    async def report(self, report: TaskReport) -> None:
        """Hand a task report to the FC outbox (logged before this returns)."""
        ...

    async def halt(self) -> None:
        """Stop all motion now (abort)."""
        ...

    def interlocks(self) -> AsyncIterator[Interlocks]:
        """The PLC's safety inputs: the current value first, then every change."""
        ...
