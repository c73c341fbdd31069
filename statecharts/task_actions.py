"""The actions, guards and activities the task charts (stow, pick) share, built into them by `task_chart`.

Each takes its data from ``ctx.data``, a `TaskData`; what differs between the tasks goes through its methods
(`step`, `failure_of`, `remember`), so one action serves both charts and keeps its name in their traces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from .engine import ActionContext, Activity, ActivityContext, Event
from .task_base import Failure, Step, TaskData, bounded, describe, guarded, make_arm_safe, run_motion
from .workcell import Primitive, TaskOutcome

__all__ = [
    "band_not_held",
    "build_report",
    "count_empty_wait",
    "end_fault",
    "end_with",
    "failed",
    "failed_fatally",
    "handoff_by_policy",
    "motion_activity",
    "perceive",
    "record_attempt",
    "record_fault",
    "record_motion_failure",
    "retract_failed",
    "safe_arm",
    "send_report",
    "start_attempt",
    "starving",
]

D = TypeVar("D", bound=TaskData)


def motion_activity(primitive: Primitive) -> Activity:
    """An activity moving the arm by the current option's / candidate's step for `primitive`."""

    async def move(ctx: ActivityContext) -> None:
        data: TaskData = ctx.data
        motion = guarded(data.step(primitive), data.config)
        result = await run_motion(data.workcell, data.config, motion)
        ctx.post("motion.done" if result.ok else "motion.failed", Step(motion, result))

    return Activity(move, ("motion.done", "motion.failed"), f"move_{primitive.value}")


def perceive(name: str, call: Callable[[D], Awaitable[object]], done: str, timeout: str) -> Activity:
    """The activity `name`: ask perception or planning (`call`, within ``perception_timeout_s``); it posts
    `done` with the answer, or `timeout` with "<name> timed out"."""

    async def ask(ctx: ActivityContext) -> None:
        data: D = ctx.data
        ok, answer = await bounded(data.config.perception_timeout_s, lambda: call(data))
        ctx.post(done, answer) if ok else ctx.post(timeout, f"{name} timed out")

    return Activity(ask, (done, timeout), name)


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


async def _pause_arm(ctx: ActivityContext) -> None:
    """A hold: retract, then let the band close; a failure here ends the task with that fault."""
    data: TaskData = ctx.data
    problem = await make_arm_safe(data.workcell, data.config)
    ctx.post("safe") if problem is None else ctx.post("safe.failed", problem)


pause_arm = Activity(_pause_arm, ("safe", "safe.failed"), "pause_arm")


def note_hold(ctx: ActionContext, event: Event) -> None:
    """A hold in a phase that resumes where it was."""
    ctx.data.holds += 1
    ctx.data.replan = False


def note_hold_in_attempt(ctx: ActionContext, event: Event) -> None:
    """A hold during an attempt: its plan is stale once the arm has left the pod."""
    ctx.data.holds += 1
    ctx.data.replan = True


def must_replan(ctx: ActionContext, event: Event) -> bool:
    return bool(ctx.data.replan)


def replan(ctx: ActionContext, event: Event) -> None:
    ctx.data.replan = False


# -- one attempt ---------------------------------------------------------------------------------------------


def start_attempt(ctx: ActionContext, event: Event) -> None:
    ctx.data.tries += 1
    ctx.data.failure = None


def record_motion_failure(ctx: ActionContext, event: Event) -> None:
    ctx.data.failure = ctx.data.failure_of(event.data)


def retract_failed(ctx: ActionContext, event: Event) -> None:
    ctx.data.failure = Failure(None, describe(event.data))  # a fault, whatever failed before it


def band_not_held(ctx: ActionContext, event: Event) -> None:
    ctx.data.failure = Failure(None, "band not held in time")


def failed_fatally(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.failure is not None and ctx.data.failure.fatal


def failed(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.failure is not None


def record_attempt(ctx: ActionContext, event: Event) -> None:
    data: TaskData = ctx.data
    assert data.failure is not None
    assert data.failure.kind is not None  # a fatal failure (no kind) ends the task instead: see failed_fatally
    data.remember(data.failure.kind)


def handoff_by_policy(ctx: ActionContext, event: Event) -> None:
    ctx.data.outcome = TaskOutcome.HANDOFF
    ctx.data.reason = ctx.data.decision.reason
