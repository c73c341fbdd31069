"""Task glue: the config and data the stow and pick charts share, and `run_task`, which runs one of them.

`run_task` runs a task chart in a `ChartRunner` to its final state and returns the report the chart sent
(or `Starved`). No report is ever lost: when the task is cancelled (hold, stop, abort) after it took an item
or an order, the report it had built (or an ``interrupted`` fault report) is still sent, shielded and bounded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeVar

import anyio

from planning.retry import FailureKind, RetryBudget

from .engine import ActionContext, Activity, ActivityContext, ChartRunner, Event, TraceHook
from .workcell import (
    Motion,
    MotionOutcome,
    MotionResult,
    Primitive,
    TaskOutcome,
    TaskReport,
    Workcell,
)

__all__ = [
    "FATAL",
    "GUARDED",
    "Failure",
    "Starved",
    "Step",
    "TaskConfig",
    "TaskData",
    "TaskKind",
    "bounded",
    "guarded",
    "make_arm_safe",
    "motion_activity",
    "run_task",
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
            "grasp_timeout_s",
            "retract_timeout_s",
            "perception_timeout_s",
            "report_timeout_s",
            "default_force_limit_n",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class Starved:
    """A task that ended without work: ``waits`` empty waits in a row, nothing taken, nothing reported."""

    kind: TaskKind
    task_id: str
    waits: int


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
    failure: Failure | None = None
    outcome: TaskOutcome | None = None
    reason: str = ""
    report: TaskReport | None = None
    delivered: bool = False

    kind: TaskKind = "stow"

    # -- overridden by the charts --------------------------------------------------------------------------
    @property
    def taken(self) -> bool:
        """An item / order was taken: from now on a report is owed."""
        return False

    @property
    def attempts(self) -> int:
        return 0

    def subject(self) -> tuple[str, str]:
        """(item_id, bin_id) for the report."""
        return "", ""

    @abstractmethod
    def step(self, primitive: Primitive) -> Motion:
        """The planned motion for ``primitive`` in the current attempt (each task chart says how)."""

    # -- shared ----------------------------------------------------------------------------------------------
    def retract(self) -> Motion:
        return retract_motion(self.config)

    def build_report(self, now: float, outcome: TaskOutcome, reason: str) -> TaskReport:
        item_id, bin_id = self.subject()
        return TaskReport(
            task_id=self.task_id, task=self.kind, outcome=outcome, reason=reason, item_id=item_id,
            bin_id=bin_id, attempts=self.attempts, started_s=self.started_s, ended_s=now,
        )  # fmt: skip


# -- helpers the charts share ------------------------------------------------------------------------------


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


def motion_activity(primitive: Primitive) -> Activity:
    """An activity moving the arm by the current option's / candidate's step for `primitive`."""

    async def move(ctx: ActivityContext) -> None:
        data: TaskData = ctx.data
        motion = guarded(data.step(primitive), data.config)
        result = await run_motion(data.workcell, data.config, motion)
        ctx.post("motion.done" if result.ok else "motion.failed", Step(motion, result))

    return Activity(move, ("motion.done", "motion.failed"), f"move_{primitive.value}")


def describe(step: Step) -> str:
    r = step.result
    extra = f" (code {r.fault_code})" if r.fault_code else ""
    detail = f": {r.detail}" if r.detail else ""
    return f"{step.motion.primitive.value} {r.outcome.value}{extra}{detail}"


# Actions and activities every task chart uses.


def count_empty_wait(ctx: ActionContext, event: Event) -> None:
    ctx.data.empty_waits += 1


def starving(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.empty_waits + 1 >= ctx.data.config.starve_limit


def record_fault(ctx: ActionContext, event: Event) -> None:
    """A fault from an `error.*` event (an activity or action raised) or from a band / perception failure."""
    data = event.data
    reason = getattr(data, "error", None) or data
    ctx.data.failure = Failure(None, f"{event.name}: {reason}")


def end_with(outcome: TaskOutcome, reason: str | None = None) -> Callable[[ActionContext, Event], None]:
    """An action setting the task's outcome (reason: given, else the event's payload, else the failure)."""

    def action(ctx: ActionContext, event: Event) -> None:
        ctx.data.outcome = outcome
        if reason is not None:
            ctx.data.reason = reason
        elif isinstance(event.data, str) and event.data:
            ctx.data.reason = event.data
        elif ctx.data.failure is not None:
            ctx.data.reason = ctx.data.failure.reason
        else:
            ctx.data.reason = outcome.value

    action.__name__ = f"end_{outcome.value}"
    return action


def end_fault(ctx: ActionContext, event: Event) -> None:
    ctx.data.outcome = TaskOutcome.FAULT
    ctx.data.reason = ctx.data.failure.reason if ctx.data.failure else "fault"


def build_report(ctx: ActionContext, event: Event) -> None:
    outcome = ctx.data.outcome or TaskOutcome.FAULT
    reason = ctx.data.reason or ("" if outcome is TaskOutcome.DONE else outcome.value)
    ctx.data.report = ctx.data.build_report(ctx.now(), outcome, reason)


async def _send_report(ctx: ActivityContext) -> None:
    data: TaskData = ctx.data
    report = data.report
    assert report is not None
    ok, _ = await bounded(data.config.report_timeout_s, lambda: data.workcell.report(report))
    data.delivered = ok
    ctx.post("report.sent" if ok else "report.timeout")


send_report = Activity(_send_report, ("report.sent", "report.timeout"), "send_report")


async def _safe_arm(ctx: ActivityContext) -> None:
    """Fault path: retract (attempt), then let the band close; a failure here becomes the reason if none was."""
    data: TaskData = ctx.data
    problem = await make_arm_safe(data.workcell, data.config)
    if data.failure is None and problem is not None:
        data.failure = Failure(None, problem)
    ctx.post("safe")


safe_arm = Activity(_safe_arm, ("safe",), "safe_arm")


# -- running one task ----------------------------------------------------------------------------------------


async def run_task(
    kind: TaskKind,
    workcell: Workcell,
    *,
    task_id: str,
    trace_hooks: TraceHook | Sequence[TraceHook] = (),
    config: TaskConfig | None = None,
    on_unreturned: Callable[[TaskReport], None] | None = None,
) -> TaskReport | Starved:
    """Run the `kind` chart to its end; return the report it delivered, or `Starved`.

    When the task is cancelled, the report it owed is still delivered (shielded, bounded) but cannot be
    returned: `on_unreturned` is called with it, so the caller's counters agree with the reports sent.
    """
    from . import pick, stow  # late: the charts import this module

    config = config or TaskConfig()
    data: TaskData
    if kind == "stow":
        chart, data = stow.build(), stow.StowData(workcell, task_id=task_id, config=config)
    elif kind == "pick":
        chart, data = pick.build(), pick.PickData(workcell, task_id=task_id, config=config)
    else:
        raise ValueError(f"unknown task kind {kind!r}: use 'stow' or 'pick'")
    data.started_s = anyio.current_time()
    runner = ChartRunner(chart, data=data, trace=trace_hooks)
    try:
        final = await runner.run()
    except BaseException:
        if data.taken and not data.delivered:
            await _deliver_anyway(data)
        if data.delivered and data.report is not None and on_unreturned is not None:
            on_unreturned(data.report)
        raise
    if data.taken and not data.delivered:  # the chart's own send timed out
        await _deliver_anyway(data)
    if final == "starved":
        return Starved(kind, task_id, data.empty_waits)
    assert data.report is not None, f"task chart {chart.name!r} ended in {final!r} without a report"
    return data.report


async def _deliver_anyway(data: TaskData) -> None:
    """Cancelled (or the chart's own send timed out): send what is owed, shielded and bounded."""
    report = data.report
    if report is None:
        report = data.build_report(anyio.current_time(), TaskOutcome.FAULT, f"interrupted: {_where(data)}")
        data.report = report
    with anyio.CancelScope(shield=True), anyio.move_on_after(data.config.report_timeout_s):
        await data.workcell.report(report)
        data.delivered = True


def _where(data: TaskData) -> str:
    subject = ", ".join(f"{k} {v}" for k, v in zip(("item", "bin"), data.subject(), strict=True) if v)
    return f"task {data.task_id} cancelled" + (f" ({subject})" if subject else "")
