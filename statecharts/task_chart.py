"""The pieces every task chart (stow, pick) is built from: shared activities, actions and guards.

Each takes its data from ``ctx.data``, a `TaskData`.
"""

from __future__ import annotations

from collections.abc import Callable

from .engine import ActionContext, Activity, ActivityContext, Event
from .task_base import Failure, Step, TaskData, bounded, guarded, make_arm_safe, run_motion
from .workcell import Primitive, TaskOutcome

__all__ = [
    "build_report",
    "count_empty_wait",
    "end_fault",
    "end_with",
    "motion_activity",
    "record_fault",
    "safe_arm",
    "send_report",
    "starving",
]


def motion_activity(primitive: Primitive) -> Activity:
    """An activity moving the arm by the current option's / candidate's step for `primitive`."""

    async def move(ctx: ActivityContext) -> None:
        data: TaskData = ctx.data
        motion = guarded(data.step(primitive), data.config)
        result = await run_motion(data.workcell, data.config, motion)
        ctx.post("motion.done" if result.ok else "motion.failed", Step(motion, result))

    return Activity(move, ("motion.done", "motion.failed"), f"move_{primitive.value}")


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
