"""What a task chart runs on: its config (`TaskConfig`), its data (`TaskData`) and the main-arm helpers.

Imported by the task charts (stow, pick), the band region and the cell; it imports none of them, so every
chart module can build on it and `tasks.run_task` can import the charts at the top.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeVar

import anyio

from planning.retry import FailureKind, RetryBudget, RetryDecision

from .workcell import Motion, MotionOutcome, MotionResult, Primitive, TaskOutcome, TaskReport, Workcell

__all__ = [
    "FATAL",
    "GUARDED",
    "Failure",
    "Step",
    "TaskConfig",
    "TaskData",
    "TaskKind",
    "bounded",
    "describe",
    "guarded",
    "make_arm_safe",
    "run_motion",
]

TaskKind = Literal["stow", "pick"]
T = TypeVar("T")

# Outcomes that mean the robot itself is in trouble: retract (attempt), then end the task as a fault.
FATAL = frozenset({MotionOutcome.FAULT, MotionOutcome.TIMEOUT, MotionOutcome.UNAVAILABLE})
# Primitives that touch the pod or its items: never sent without a force limit.
GUARDED = frozenset({Primitive.APPROACH, Primitive.EXTEND_BLADE, Primitive.SWEEP, Primitive.EXTRACT})


@dataclass(frozen=True, slots=True)
class TaskConfig:
    """Timeouts (s), the retry budget and the starve rule of one task."""

    arrival_timeout_s: float = 30.0  # one wait for an item / an order
    starve_limit: int = 3  # empty waits in a row before the task ends `starved`
    hook_timeout_s: float = 5.0
    band_timeout_s: float = 30.0  # the main arm waits this long for the band to be held, then ends the attempt
    grasp_timeout_s: float = 10.0
    retract_timeout_s: float = 10.0
    perception_timeout_s: float = 15.0  # plan_stow, verify_stow, check_pick, plan_pick
    report_timeout_s: float = 5.0
    motion_grace_s: float = 2.0  # beyond a motion's own timeout before the chart gives up on the call
    default_force_limit_n: float = 80.0  # for a guarded step the planner left without a limit
    budget: RetryBudget = field(default_factory=RetryBudget)

    def __post_init__(self) -> None:
        if self.starve_limit < 1:
            raise ValueError(f"starve_limit must be >= 1, got {self.starve_limit}")
        for name in (
            "arrival_timeout_s",
            "hook_timeout_s",
            "band_timeout_s",
            "grasp_timeout_s",
            "retract_timeout_s",
            "perception_timeout_s",
            "report_timeout_s",
            "default_force_limit_n",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt failed: ``kind`` for the retry policy, or None for a fault (no retry)."""

    kind: FailureKind | None
    reason: str

    @property
    def fatal(self) -> bool:
        return self.kind is None


class Step(NamedTuple):
    """Payload of ``motion.done`` / ``motion.failed``."""

    motion: Motion
    result: MotionResult


@dataclass
class TaskData(ABC):
    """What a task chart runs on; subclassed by `StowData` and `PickData`."""

    workcell: Workcell
    task_id: str = "task"
    config: TaskConfig = field(default_factory=TaskConfig)
    empty_waits: int = 0
    started_s: float = 0.0
    tries: int = 0  # attempts started (`task_actions.start_attempt`)
    failure: Failure | None = None
    decision: RetryDecision | None = None  # the retry policy's last word
    outcome: TaskOutcome | None = None
    reason: str = ""
    report: TaskReport | None = None
    delivered: bool = False
    replan: bool = False  # held in an attempt: on unhold the task plans again (`task_chart.build_chart`)
    holds: int = 0  # times the task was paused by a hold

    kind: TaskKind = "stow"

    # -- overridden by the charts --------------------------------------------------------------------------
    @property
    def taken(self) -> bool:
        """An item / order was taken: from now on a report is owed."""
        return False

    def subject(self) -> tuple[str, str]:
        """(item_id, bin_id) for the report."""
        return "", ""

    @abstractmethod
    def step(self, primitive: Primitive) -> Motion:
        """The planned motion for ``primitive`` in the current attempt (each task chart says how)."""

    @abstractmethod
    def failure_of(self, step: Step) -> Failure:
        """A failed motion of the current attempt, mapped onto the retry policy's failure kinds."""

    @abstractmethod
    def remember(self, kind: FailureKind) -> None:
        """Add the current attempt, failed with `kind`, to the history the retry policy reads."""

    # -- shared ----------------------------------------------------------------------------------------------
    @property
    def attempts(self) -> int:
        return self.tries

    def retract(self) -> Motion:
        return retract_motion(self.config)

    def unplanned(self, primitive: Primitive, plan: str) -> Motion:
        """A step `plan` has no motion for: the default retract, else LookupError."""
        if primitive is Primitive.RETRACT:
            return self.retract()
        raise LookupError(f"{plan} has no {primitive.value} step")

    def build_report(self, now: float, outcome: TaskOutcome, reason: str) -> TaskReport:
        item_id, bin_id = self.subject()
        return TaskReport(
            task_id=self.task_id, task=self.kind, outcome=outcome, reason=reason, item_id=item_id,
            bin_id=bin_id, attempts=self.attempts, started_s=self.started_s, ended_s=now,
        )  # fmt: skip


# -- main-arm helpers ----------------------------------------------------------------------------------------


async def bounded(seconds: float, call: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
    """(True, value) when `call` returned within `seconds`, else (False, None)."""
    with anyio.move_on_after(seconds):
        return True, await call()
    return False, None


def guarded(motion: Motion, config: TaskConfig) -> Motion:
    """The motion, with a force limit where the primitive needs one."""
    if motion.primitive in GUARDED and motion.force_limit_n is None:
        return motion.model_copy(update={"force_limit_n": config.default_force_limit_n})
    return motion


def retract_motion(config: TaskConfig) -> Motion:
    return Motion(primitive=Primitive.RETRACT, timeout_s=config.retract_timeout_s)


async def run_motion(workcell: Workcell, config: TaskConfig, motion: Motion) -> MotionResult:
    """One main-arm move, guarded, and bounded beyond its own timeout (then counted as a TIMEOUT)."""
    motion = guarded(motion, config)
    ok, result = await bounded(motion.timeout_s + config.motion_grace_s, lambda: workcell.move(motion))
    if not ok or result is None:
        return MotionResult(outcome=MotionOutcome.TIMEOUT, elapsed_s=motion.timeout_s, detail="no reply from robot")
    return result


async def make_arm_safe(workcell: Workcell, config: TaskConfig) -> str | None:
    """Retract (attempt), then let the band close (attempt): None when both worked, else the first failure."""
    motion = retract_motion(config)
    retract = await run_motion(workcell, config, motion)
    timeout = config.hook_timeout_s
    ok, hook = await bounded(timeout + config.motion_grace_s, lambda: workcell.set_hook(False, timeout))
    if not retract.ok:
        return describe(Step(motion, retract))
    if not ok or hook is None or not hook.ok:
        return f"band hook up failed: {hook.outcome.value if hook is not None else 'no reply'}"
    return None


def describe(step: Step) -> str:
    r = step.result
    extra = f" (code {r.fault_code})" if r.fault_code else ""
    detail = f": {r.detail}" if r.detail else ""
    return f"{step.motion.primitive.value} {r.outcome.value}{extra}{detail}"
