"""The stow primitive sequence: approach, open band, [extend blade, sweep], eject item, retract, close band.

Bin frame, mm (as :mod:`drivers.sim.world`): x right from the left wall, y up from the floor, z into the bin
from the opening. Each step is a small frozen dataclass with its parameters, a timeout and, where the motion
is guarded, a force limit (the reflex guard stops the robot when the F/T reading exceeds it).

Timeouts: ``travel / speed * timeout_factor + base_timeout_s``.

Default force limits (N), for a tool rated about 40 N:
* approach 15: a free-space move; any contact is unexpected.
* open_band / close_band 30: the band arm stretches the elastic band (about 10-20 N when pulled clear).
* extend_blade 10: the blade slides into a gap; resistance means something is in the way.
* sweep: the plan's ``force_limit_n`` (predicted push force x margin, capped by the tool limit).
* eject_item 20: the belts slide the item in; more means it is jammed against the back or a neighbour.
* retract 25: withdrawing blade and gripper past squeezed or leaning items.
The blade stays extended at the end of the cleared span while the item is ejected (it keeps squeezed items,
``plan.hold``, from springing back into the span) and retracts with the gripper.
"""

from __future__ import annotations

from dataclasses import dataclass

from .bins import ItemDims
from .checks import PlanningError, real
from .placement import Placement
from .sweep import SweepPlan

__all__ = [
    "Approach",
    "CloseBand",
    "EjectItem",
    "ExtendBlade",
    "OpenBand",
    "Retract",
    "StowStep",
    "Sweep",
    "stow_primitives",
]


@dataclass(frozen=True, slots=True)
class Approach:
    """Free-space move of the gripper to ``target_mm`` (in front of the placement), guarded."""

    target_mm: tuple[float, float, float]
    speed_mm_s: float
    timeout_s: float
    force_limit_n: float


@dataclass(frozen=True, slots=True)
class OpenBand:
    """The band arm pulls the elastic band ``travel_mm`` clear of the opening."""

    travel_mm: float
    timeout_s: float
    force_limit_n: float


@dataclass(frozen=True, slots=True)
class ExtendBlade:
    """Extend the blade ``depth_mm`` into the bin at ``entry_mm`` (x, y); horizontal for a tip."""

    entry_mm: tuple[float, float]
    depth_mm: float
    horizontal: bool
    timeout_s: float
    force_limit_n: float


@dataclass(frozen=True, slots=True)
class Sweep:
    """Move the extended blade ``distance_mm`` along x in ``direction``; ``hold`` keeps it there afterwards."""

    direction: int
    distance_mm: float
    speed_mm_s: float
    hold: bool
    timeout_s: float
    force_limit_n: float


@dataclass(frozen=True, slots=True)
class EjectItem:
    """The gripper's belts slide the item ``depth_mm`` into the bin at the placement's corner ``(x, y)``."""

    x_mm: float
    y_mm: float
    depth_mm: float
    timeout_s: float
    force_limit_n: float


@dataclass(frozen=True, slots=True)
class Retract:
    """Withdraw gripper (and blade, if extended) ``distance_mm`` out of the bin."""

    distance_mm: float
    with_blade: bool
    timeout_s: float
    force_limit_n: float


@dataclass(frozen=True, slots=True)
class CloseBand:
    """The band arm releases the band back over the opening."""

    timeout_s: float
    force_limit_n: float


StowStep = Approach | OpenBand | ExtendBlade | Sweep | EjectItem | Retract | CloseBand


def _timeout(travel: float, speed: float, factor: float, base: float) -> float:
    return travel / speed * factor + base


def stow_primitives(
    placement: Placement,
    sweep_plan: SweepPlan | None,
    item: ItemDims,
    *,
    bin_depth_mm: float,
    standoff_mm: float = 50.0,
    band_travel_mm: float = 60.0,
    approach_speed_mm_s: float = 250.0,
    blade_speed_mm_s: float = 100.0,
    sweep_speed_mm_s: float = 50.0,
    eject_speed_mm_s: float = 150.0,
    timeout_factor: float = 2.0,
    base_timeout_s: float = 1.0,
    approach_force_limit_n: float = 15.0,
    band_force_limit_n: float = 30.0,
    blade_force_limit_n: float = 10.0,
    eject_force_limit_n: float = 20.0,
    retract_force_limit_n: float = 25.0,
) -> list[StowStep]:
    """The ordered primitives that stow ``item`` at ``placement``, after the planned sweep if there is one.

    ``placement`` must be the plan's placement when a plan is given, and its footprint the item's (rotated as
    the placement says). The item is ejected to ``min(item depth, bin depth)`` from the opening.
    """
    if not isinstance(placement, Placement):
        raise PlanningError(f"placement must be a Placement, got {type(placement).__name__}")
    if not isinstance(item, ItemDims):
        raise PlanningError(f"item must be ItemDims, got {type(item).__name__}")
    if sweep_plan is not None:
        if not isinstance(sweep_plan, SweepPlan):
            raise PlanningError(f"sweep_plan must be a SweepPlan or None, got {type(sweep_plan).__name__}")
        if not sweep_plan.ok or sweep_plan.entry_mm is None:
            raise PlanningError(f"sweep_plan is not executable: {sweep_plan.reason} ({sweep_plan.detail})")
        if sweep_plan.placement != placement:
            raise PlanningError(f"placement {placement} is not the one the sweep frees ({sweep_plan.placement})")
        real("sweep_plan.distance_mm", sweep_plan.distance_mm)
        real("sweep_plan.force_limit_n", sweep_plan.force_limit_n)
        if sweep_plan.direction not in (1, -1):
            raise PlanningError(f"sweep_plan.direction must be +1 or -1, got {sweep_plan.direction!r}")
    real("placement.x_mm", placement.x_mm, allow_zero=True)
    real("placement.y_mm", placement.y_mm, allow_zero=True)
    w, h = (item.height_mm, item.width_mm) if placement.rotated else (item.width_mm, item.height_mm)
    if abs(w - placement.width_mm) > 1e-6 or abs(h - placement.height_mm) > 1e-6:
        raise PlanningError(
            f"item {w}x{h} mm (rotated={placement.rotated}) does not match placement "
            f"{placement.width_mm}x{placement.height_mm} mm"
        )
    depth = real("bin_depth_mm", bin_depth_mm)
    standoff = real("standoff_mm", standoff_mm)
    band = real("band_travel_mm", band_travel_mm)
    v_app, v_blade = real("approach_speed_mm_s", approach_speed_mm_s), real("blade_speed_mm_s", blade_speed_mm_s)
    v_sweep, v_eject = real("sweep_speed_mm_s", sweep_speed_mm_s), real("eject_speed_mm_s", eject_speed_mm_s)
    factor = real("timeout_factor", timeout_factor)
    if factor < 1.0:
        raise PlanningError(f"timeout_factor must be >= 1, got {timeout_factor!r}")
    base = real("base_timeout_s", base_timeout_s, allow_zero=True)
    f_app, f_band = real("approach_force_limit_n", approach_force_limit_n), real("band_force_limit_n",
                                                                                   band_force_limit_n)
    f_blade, f_eject = real("blade_force_limit_n", blade_force_limit_n), real("eject_force_limit_n",
                                                                               eject_force_limit_n)
    f_retract = real("retract_force_limit_n", retract_force_limit_n)

    insert = min(item.depth_mm, depth)
    target = (placement.x_mm + w / 2, placement.y_mm + h / 2, -standoff)
    # Approach travel is not known here (the arm's start pose); time it over a nominal 500 mm.
    steps: list[StowStep] = [
        Approach(target, v_app, _timeout(500.0, v_app, factor, base), f_app),
        OpenBand(band, _timeout(band, v_app, factor, base), f_band),
    ]
    blade_out = sweep_plan is not None
    if sweep_plan is not None:
        entry = sweep_plan.entry_mm
        assert entry is not None
        steps.append(ExtendBlade(entry, depth, sweep_plan.tip, _timeout(depth + standoff, v_blade, factor, base),
                                 f_blade))
        steps.append(Sweep(sweep_plan.direction, sweep_plan.distance_mm, v_sweep, sweep_plan.hold,
                           _timeout(sweep_plan.distance_mm, v_sweep, factor, base), sweep_plan.force_limit_n))
    steps.append(EjectItem(placement.x_mm, placement.y_mm, insert, _timeout(insert + standoff, v_eject, factor, base),
                           f_eject))
    steps.append(Retract(standoff + (depth if blade_out else 0.0), blade_out,
                         _timeout(standoff + (depth if blade_out else 0.0), v_blade, factor, base), f_retract))
    steps.append(CloseBand(_timeout(band, v_app, factor, base), f_band))
    return steps
