"""Retry policy: after a failed attempt, decide the next action. Pure, deterministic, explained.

``history`` holds every attempt of the task so far, in order, **including the one that just failed** (the last
entry, whose ``failure`` is the failure being handled). Every decision carries a human-readable ``reason``.

Stow (targets: bins in ranked order, each with N ranked placements)
    * ``no_placement``       -> next bin (the bin had no usable placement)
    * ``target_not_found``   -> next bin (the bin could not be localised)
    * ``contact_force``      -> next placement in the same bin (something unseen is in the way)
    * ``item_slipped``       -> retry the same placement (item re-seated; pose re-estimated upstream)
    * ``eject_failed``       -> retry the same placement; ``max_consecutive_eject_failures`` in a row -> handoff
                                (tool fault suspected)
    * ``suction_lost``       -> handoff (item dropped in transit; its whereabouts are unknown)
Pick (targets: N ranked suction candidates)
    * ``vacuum_not_reached``, ``suction_lost``, ``item_slipped``, ``contact_force`` -> next candidate
    * ``target_not_found``   -> handoff (the item is not where the manifest says)

Escalation: "retry same" beyond ``max_attempts_per_target`` becomes "next placement"/"next candidate";
"next placement" with the bin's budget (``max_attempts_per_bin``) or placements exhausted becomes "next bin";
"next bin" / "next candidate" with nothing untried left becomes handoff. Reaching ``max_total_attempts``
is a handoff whatever the failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from planning.placement import PlanningError

__all__ = [
    "Action",
    "FailureKind",
    "PickAttempt",
    "RetryBudget",
    "RetryDecision",
    "StowAttempt",
    "next_pick_action",
    "next_stow_action",
]


class FailureKind(StrEnum):
    NO_PLACEMENT = "no_placement"
    CONTACT_FORCE = "contact_force"
    EJECT_FAILED = "eject_failed"
    SUCTION_LOST = "suction_lost"
    VACUUM_NOT_REACHED = "vacuum_not_reached"
    ITEM_SLIPPED = "item_slipped"
    TARGET_NOT_FOUND = "target_not_found"


class Action(StrEnum):
    RETRY_SAME = "retry_same"
    NEXT_PLACEMENT = "next_placement"
    NEXT_BIN = "next_bin"
    NEXT_CANDIDATE = "next_candidate"
    HANDOFF = "handoff"


_STOW_POLICY: Mapping[FailureKind, Action] = {
    FailureKind.NO_PLACEMENT: Action.NEXT_BIN,
    FailureKind.TARGET_NOT_FOUND: Action.NEXT_BIN,
    FailureKind.CONTACT_FORCE: Action.NEXT_PLACEMENT,
    FailureKind.ITEM_SLIPPED: Action.RETRY_SAME,
    FailureKind.EJECT_FAILED: Action.RETRY_SAME,
    FailureKind.SUCTION_LOST: Action.HANDOFF,
}
_PICK_POLICY: Mapping[FailureKind, Action] = {
    FailureKind.VACUUM_NOT_REACHED: Action.NEXT_CANDIDATE,
    FailureKind.SUCTION_LOST: Action.NEXT_CANDIDATE,
    FailureKind.ITEM_SLIPPED: Action.NEXT_CANDIDATE,
    FailureKind.CONTACT_FORCE: Action.NEXT_CANDIDATE,
    FailureKind.TARGET_NOT_FOUND: Action.HANDOFF,
}


def _nonneg_int(name: str, v: object, *, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise PlanningError(f"{name} must be an int >= {minimum}, got {v!r}")
    return v


@dataclass(frozen=True, slots=True)
class RetryBudget:
    max_total_attempts: int = 6
    max_attempts_per_bin: int = 3
    max_attempts_per_target: int = 2  # same placement (stow) or same candidate (pick)
    max_consecutive_eject_failures: int = 2

    def __post_init__(self) -> None:
        for name in (
            "max_total_attempts",
            "max_attempts_per_bin",
            "max_attempts_per_target",
            "max_consecutive_eject_failures",
        ):
            _nonneg_int(name, getattr(self, name), minimum=1)


@dataclass(frozen=True, slots=True)
class StowAttempt:
    """A stow attempt into ``bin_id`` at ranked ``placement_index`` (None: no placement was available)."""

    bin_id: str
    placement_index: int | None
    failure: FailureKind

    def __post_init__(self) -> None:
        if not isinstance(self.bin_id, str) or not self.bin_id:
            raise PlanningError(f"bin_id must be a non-empty str, got {self.bin_id!r}")
        if self.placement_index is not None:
            _nonneg_int("placement_index", self.placement_index)
        if not isinstance(self.failure, FailureKind):
            raise PlanningError(f"failure must be a FailureKind, got {self.failure!r}")


@dataclass(frozen=True, slots=True)
class PickAttempt:
    candidate_index: int
    failure: FailureKind

    def __post_init__(self) -> None:
        _nonneg_int("candidate_index", self.candidate_index)
        if not isinstance(self.failure, FailureKind):
            raise PlanningError(f"failure must be a FailureKind, got {self.failure!r}")


@dataclass(frozen=True, slots=True)
class RetryDecision:
    action: Action
    reason: str
    bin_id: str | None = None
    placement_index: int | None = None
    candidate_index: int | None = None


def _handoff(reason: str) -> RetryDecision:
    return RetryDecision(Action.HANDOFF, reason)


def next_stow_action(
    history: Sequence[StowAttempt],
    bins: Sequence[tuple[str, int]],
    budget: RetryBudget = RetryBudget(),
) -> RetryDecision:
    """Next stow action. ``bins``: (bin_id, number of ranked placements) in preference order."""
    if isinstance(history, str | bytes) or not isinstance(history, Sequence) or len(history) == 0:
        raise PlanningError("history must be a non-empty sequence of StowAttempt (last = the failed attempt)")
    if not all(isinstance(a, StowAttempt) for a in history):
        raise PlanningError("history must contain only StowAttempt")
    if not isinstance(budget, RetryBudget):
        raise PlanningError(f"budget must be RetryBudget, got {type(budget).__name__}")
    n_place: dict[str, int] = {}
    for entry in bins:
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str) and entry[0]):
            raise PlanningError(f"bins entries must be (bin_id, n_placements), got {entry!r}")
        if entry[0] in n_place:
            raise PlanningError(f"duplicate bin id {entry[0]!r}")
        n_place[entry[0]] = _nonneg_int(f"n_placements of {entry[0]}", entry[1])
    for a in history:
        if a.bin_id not in n_place:
            raise PlanningError(f"history mentions unknown bin {a.bin_id!r}")
        if a.placement_index is not None and a.placement_index >= n_place[a.bin_id]:
            raise PlanningError(f"placement_index {a.placement_index} out of range for bin {a.bin_id!r}")

    last = history[-1]
    failure = last.failure
    if failure not in _STOW_POLICY:
        raise PlanningError(f"failure {failure.value!r} does not apply to a stow")
    if len(history) >= budget.max_total_attempts:
        return _handoff(
            f"total attempt budget exhausted ({len(history)}/{budget.max_total_attempts}) after {failure.value}"
        )
    action = _STOW_POLICY[failure]
    if action is Action.HANDOFF:
        return _handoff(f"{failure.value}: item lost in transit, location unknown")

    why = failure.value
    if failure is FailureKind.EJECT_FAILED:
        streak = 0
        for a in reversed(history):
            if a.failure is not FailureKind.EJECT_FAILED:
                break
            streak += 1
        if streak >= budget.max_consecutive_eject_failures:
            return _handoff(f"eject_failed {streak} times in a row: tool fault suspected")

    if action is Action.RETRY_SAME:
        if last.placement_index is None:
            action, why = Action.NEXT_BIN, f"{why} with no placement"
        else:
            same = sum(1 for a in history if a.bin_id == last.bin_id and a.placement_index == last.placement_index)
            in_bin = sum(1 for a in history if a.bin_id == last.bin_id)
            if same < budget.max_attempts_per_target and in_bin < budget.max_attempts_per_bin:
                return RetryDecision(
                    Action.RETRY_SAME,
                    f"{why}: retry placement {last.placement_index} in {last.bin_id} "
                    f"(attempt {same + 1}/{budget.max_attempts_per_target})",
                    bin_id=last.bin_id,
                    placement_index=last.placement_index,
                )
            action, why = Action.NEXT_PLACEMENT, f"{why}, placement {last.placement_index} retry budget spent"

    if action is Action.NEXT_PLACEMENT:
        in_bin = sum(1 for a in history if a.bin_id == last.bin_id)
        tried = {a.placement_index for a in history if a.bin_id == last.bin_id}
        untried = [i for i in range(n_place[last.bin_id]) if i not in tried]
        if in_bin >= budget.max_attempts_per_bin:
            action, why = Action.NEXT_BIN, f"{why}, bin {last.bin_id} attempt budget spent ({in_bin})"
        elif not untried:
            action, why = Action.NEXT_BIN, f"{why}, no untried placement left in {last.bin_id}"
        else:
            return RetryDecision(
                Action.NEXT_PLACEMENT,
                f"{why}: try placement {untried[0]} in {last.bin_id}",
                bin_id=last.bin_id,
                placement_index=untried[0],
            )

    # NEXT_BIN
    tried_bins = {a.bin_id for a in history}
    for bin_id, n in n_place.items():
        if bin_id not in tried_bins:
            return RetryDecision(
                Action.NEXT_BIN,
                f"{why}: try bin {bin_id}" + ("" if n else " (no ranked placement yet; re-plan)"),
                bin_id=bin_id,
                placement_index=0 if n else None,
            )
    return _handoff(f"{why}: no untried bin left ({len(tried_bins)} tried)")


def next_pick_action(
    history: Sequence[PickAttempt],
    n_candidates: int,
    budget: RetryBudget = RetryBudget(),
) -> RetryDecision:
    """Next pick action over ``n_candidates`` ranked suction candidates."""
    if isinstance(history, str | bytes) or not isinstance(history, Sequence) or len(history) == 0:
        raise PlanningError("history must be a non-empty sequence of PickAttempt (last = the failed attempt)")
    if not all(isinstance(a, PickAttempt) for a in history):
        raise PlanningError("history must contain only PickAttempt")
    if not isinstance(budget, RetryBudget):
        raise PlanningError(f"budget must be RetryBudget, got {type(budget).__name__}")
    _nonneg_int("n_candidates", n_candidates)
    for a in history:
        if a.candidate_index >= n_candidates:
            raise PlanningError(f"candidate_index {a.candidate_index} out of range (n_candidates={n_candidates})")
    failure = history[-1].failure
    if failure not in _PICK_POLICY:
        raise PlanningError(f"failure {failure.value!r} does not apply to a pick")
    if len(history) >= budget.max_total_attempts:
        return _handoff(
            f"total attempt budget exhausted ({len(history)}/{budget.max_total_attempts}) after {failure.value}"
        )
    if _PICK_POLICY[failure] is Action.HANDOFF:
        return _handoff(f"{failure.value}: item not found where expected")
    tried = {a.candidate_index for a in history}
    untried = [i for i in range(n_candidates) if i not in tried]
    if not untried:
        return _handoff(f"{failure.value}: all {n_candidates} suction candidates tried")
    return RetryDecision(
        Action.NEXT_CANDIDATE,
        f"{failure.value}: try suction candidate {untried[0]}",
        candidate_index=untried[0],
    )
