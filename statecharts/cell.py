"""`cell`: the cell's mode, after the PackML state model (ISA-TR88), driving stow and pick tasks.

    live (watches interlocks; cmd.abort / interlock trip -> aborting)
      stopped --cmd.reset--> [running] resetting -> idle --cmd.start--> starting -> execute
        producing (runs task cycles, tasks.run_task, counting every report delivered):
          execute --alarm--> holding -> held (the same fault `FaultRepeat.limit` times in a row; unhold acknowledges)
                  --cmd.hold--> holding -> held --cmd.unhold--> unholding -> execute (the same task resumes)
        execute -> completing -> complete (max_cycles reached)   -> suspending -> suspended (a task starved)
                 --cmd.suspend--> suspending -> suspended --cmd.unsuspend--> unsuspending -> execute
                 --cmd.complete--> completing -> complete (the FC ends the run; the running task is cut short)
        complete --cmd.reset--> resetting
      [running] --cmd.stop--> stopping -> stopped
      clearing -> stopped
    aborting (halt) -> aborted --cmd.clear--> clearing

Acting states end with ``state_complete`` from their activity. A hold pauses the task (its chart retracts the
arm and lets the band close, `task_chart.build_chart`) and unhold resumes it: the task loop belongs to
`producing`, which holding and held are inside. Leaving `producing` (suspend, complete, stop, abort) cancels
the task (its report is still delivered, see `tasks.run_task`); suspending and stopping then make the arm safe
(retract, hook up). A failed safe move aborts.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio.lowlevel

from .engine import ERROR, ActionContext, Activity, ActivityContext, Chart, Event, State, TraceHook, activity, on
from .engine.model import Action
from .tasks import Starved, TaskConfig, TaskControl, bounded, make_arm_safe, run_task
from .workcell import TaskOutcome, TaskReport, Workcell

__all__ = ["CellData", "FaultRepeat", "build", "fault_key"]

TaskMix = Literal["stow", "pick", "mixed"]
REPORTS_KEPT = 1000  # a cell runs for months: the counters are totals, the reports kept are the latest


@dataclass(frozen=True, slots=True)
class FaultRepeat:
    """Hold the cell when `limit` tasks in a row end `fault` the same way within `window_s`."""

    limit: int = 3
    window_s: float = 600.0

    def __post_init__(self) -> None:
        if self.limit < 1 or not (0 < self.window_s < float("inf")):
            raise ValueError(f"fault repeat needs limit >= 1, a finite window > 0, not {self.limit}, {self.window_s}")


def fault_key(reason: str) -> str:
    """What makes two faults the same: the cause (after `<primitive> <outcome> (code N): `) with its numbers
    blanked, so the same device trouble matches whichever primitive met it, whatever the force or time."""
    _, sep, cause = reason.partition(": ")
    return re.sub(r"[-+]?\d+(\.\d+)?", "#", cause if sep else reason)


@dataclass
class CellData:
    """The cell's settings and counters (the counters are what the FC sees)."""

    workcell: Workcell
    task: TaskMix = "stow"
    max_cycles: int | None = None  # None: run until stopped
    config: TaskConfig = field(default_factory=TaskConfig)
    trace_hooks: Sequence[TraceHook] = ()
    seq: int = 0  # tasks started (the next task id)
    task_prefix: str = ""  # before every task id: a run/boot tag, so ids stay unique across restarts
    current_task: str = ""  # the id of the task running now ("" between tasks)
    cut_short: bool = False  # a Complete left execute mid-task: completing makes the arm safe first
    cycles: int = 0  # tasks ended with a report (an interrupted one too)
    interrupted: int = 0  # of which cut short by a hold, suspend, stop or abort (they do not count to max_cycles)
    counts: Counter[str] = field(default_factory=Counter)  # reports by outcome
    by_task: Counter[tuple[str, str]] = field(default_factory=Counter)  # reports by (task kind, outcome)
    handoff_reasons: Counter[str] = field(default_factory=Counter)  # by the reason's first clause
    reports: deque[TaskReport] = field(default_factory=lambda: deque(maxlen=REPORTS_KEPT))  # the latest
    last_starved: Starved | None = None
    stop_reason: str = ""  # why the cell aborted / last safe-move failure
    fault_repeat: FaultRepeat | None = None  # None: repeated faults do not hold the cell
    alarm: str = ""  # why the cell holds; cleared by cmd.unhold (the operator's acknowledgement)
    streak: list[tuple[float, str]] = field(default_factory=list)  # (ended_s, reason key) of the last faults
    control: TaskControl = field(default_factory=TaskControl)  # hold/unhold of the task running

    def count(self, report: TaskReport) -> None:
        """A report was delivered: the counters the status line, the summary and the FC show."""
        self.cycles += 1
        self.counts[report.outcome.value] += 1
        self.by_task[(report.task, report.outcome.value)] += 1
        if report.outcome is TaskOutcome.HANDOFF:
            self.handoff_reasons[report.reason.split(":")[0]] += 1
        self.reports.append(report)

    def count_interrupted(self, report: TaskReport) -> None:
        self.interrupted += 1
        self.count(report)

    def kind_for(self, seq: int) -> Literal["stow", "pick"]:
        if self.task == "mixed":
            return "stow" if seq % 2 == 0 else "pick"
        return self.task


# -- activities ----------------------------------------------------------------------------------------------


@activity("state_complete")
async def complete_at_once(ctx: ActivityContext[CellData]) -> None:
    """Resetting, starting, unholding, unsuspending, clearing: nothing to wait for yet."""
    await anyio.lowlevel.checkpoint()
    ctx.post("state_complete")


@activity("cycle.done", "task.starved", "cycles.finished")
async def execute_cycles(ctx: ActivityContext[CellData]) -> None:
    """`producing`: task after task; while the cell is held the running task is paused and none starts."""
    data = ctx.data
    while True:
        await data.control.gate()
        if data.max_cycles is not None and data.cycles - data.interrupted >= data.max_cycles:
            break
        seq = data.seq
        data.seq += 1
        kind = data.kind_for(seq)
        data.current_task = f"{data.task_prefix}{kind}-{seq:06d}"
        try:
            result = await run_task(
                kind, data.workcell, task_id=data.current_task, trace_hooks=data.trace_hooks, config=data.config,
                on_unreturned=data.count_interrupted,  # a stop's `interrupted` report is counted too
                control=data.control,
            )
        finally:
            data.current_task = ""
        if isinstance(result, Starved):
            await data.control.gate()
            ctx.post("task.starved", result)
            return
        data.count(result)
        ctx.post("cycle.done", result)
    ctx.post("cycles.finished")


@activity("state_complete", "safe.failed")
async def pause_task(ctx: ActivityContext[CellData]) -> None:
    """Holding: the running task pauses where it is (its arm made safe); with none paused, make the arm safe."""
    data = ctx.data
    if await data.control.hold():
        ctx.post("state_complete")
        return
    problem = await make_arm_safe(data.workcell, data.config)
    ctx.post("state_complete") if problem is None else ctx.post("safe.failed", problem)


@activity("state_complete")
async def resume_task(ctx: ActivityContext[CellData]) -> None:
    """Unholding: the paused task resumes, the next one may start."""
    await anyio.lowlevel.checkpoint()
    ctx.data.control.unhold()
    ctx.post("state_complete")


@activity("state_complete", "safe.failed")
async def finish(ctx: ActivityContext[CellData]) -> None:
    """Completing: after the last cycle the arm is already out of the pod; after a Complete that cut a task short
    it is made safe first, as holding and stopping do."""
    data = ctx.data
    if not data.cut_short:
        await anyio.lowlevel.checkpoint()
        ctx.post("state_complete")
        return
    data.cut_short = False
    problem = await make_arm_safe(data.workcell, data.config)
    ctx.post("state_complete") if problem is None else ctx.post("safe.failed", problem)


@activity("state_complete", "safe.failed")
async def make_safe(ctx: ActivityContext[CellData]) -> None:
    """Holding, suspending, stopping: retract the arm, let the band close."""
    data = ctx.data
    problem = await make_arm_safe(data.workcell, data.config)
    ctx.post("state_complete") if problem is None else ctx.post("safe.failed", problem)


@activity("state_complete")
async def halt(ctx: ActivityContext[CellData]) -> None:
    data = ctx.data
    await bounded(data.config.retract_timeout_s, data.workcell.halt)
    ctx.post("state_complete")


@activity("interlock.tripped")
async def watch_interlocks(ctx: ActivityContext[CellData]) -> None:
    data = ctx.data
    async for value in data.workcell.interlocks():
        if not value.ok:
            ctx.post("interlock.tripped", f"interlock: {value.detail or 'not ok'}")
            return
    ctx.post("interlock.tripped", "interlock stream ended")


# -- actions -------------------------------------------------------------------------------------------------


def check_repeats(ctx: ActionContext[CellData], event: Event) -> None:
    """A fault that repeats `limit` times in a row (same reason, within the window) raises ``alarm``."""
    data = ctx.data
    rule, report = data.fault_repeat, event.data
    if rule is None:
        return
    if report.outcome is not TaskOutcome.FAULT:
        data.streak.clear()
        return
    key = fault_key(report.reason)
    if data.streak and (data.streak[-1][1] != key or report.ended_s - data.streak[0][0] > rule.window_s):
        data.streak.clear()
    data.streak.append((report.ended_s, key))
    if len(data.streak) >= rule.limit:
        ctx.raise_event("alarm", f"the same fault {len(data.streak)} times in a row: {report.reason}")


def note_alarm(ctx: ActionContext[CellData], event: Event) -> None:
    ctx.data.alarm = str(event.data)
    ctx.data.streak.clear()


def note_cut_short(ctx: ActionContext[CellData], event: Event) -> None:
    ctx.data.cut_short = True


def release_hold(ctx: ActionContext[CellData], event: Event) -> None:
    ctx.data.control.release()  # the task loop ends with `producing`: a later one starts unheld


def acknowledge_alarm(ctx: ActionContext[CellData], event: Event) -> None:
    ctx.data.alarm = ""


def new_run(ctx: ActionContext[CellData], event: Event) -> None:
    ctx.data.cycles = ctx.data.interrupted = 0  # max_cycles counts from each reset; counts are totals


def note_starved(ctx: ActionContext[CellData], event: Event) -> None:
    ctx.data.last_starved = event.data


def note_reason(ctx: ActionContext[CellData], event: Event) -> None:
    data = event.data
    ctx.data.stop_reason = str(getattr(data, "error", None) or data or event.name)


def _acting(id: str, act: Activity, done: str, on_entry: Action | Sequence[Action] = ()) -> State:
    """A PackML acting state: its activity ends it with ``state_complete`` (or aborts on ``safe.failed``)."""
    extra = [on("safe.failed", "aborting", action=note_reason)] if "safe.failed" in act.posts else []
    return State(id, activities=act, transitions=[on("state_complete", done), *extra], on_entry=on_entry)


def build() -> Chart:
    return Chart(
        "cell",
        State(
            "cell",
            State(
                "live",
                State("stopped", transitions=[on("cmd.reset", "resetting")]),
                State(
                    "running",
                    _acting("resetting", complete_at_once, "idle", on_entry=new_run),
                    State("idle", transitions=[on("cmd.start", "starting")]),
                    _acting("starting", complete_at_once, "execute"),
                    State(
                        "producing",
                        State(
                            "execute",
                            transitions=[
                                on("alarm", "holding", action=note_alarm),
                                on("cycles.finished", "completing"),
                                on("task.starved", "suspending", action=note_starved),
                                on("cmd.hold", "holding"),
                                on("cmd.suspend", "suspending"),
                                on("cmd.complete", "completing", action=note_cut_short),
                            ],
                        ),
                        _acting("holding", pause_task, "held"),
                        State("held", transitions=[on("cmd.unhold", "unholding", action=acknowledge_alarm)]),
                        _acting("unholding", resume_task, "execute"),
                        initial="execute",
                        activities=execute_cycles,
                        on_exit=release_hold,
                        transitions=[on("cycle.done", action=check_repeats)],
                        doc="the task loop runs through a hold: holding pauses the task where it is and held keeps "
                        "it paused, so unhold resumes the same task (its chart's history), not a new one",
                    ),
                    _acting("completing", finish, "complete"),
                    State("complete", transitions=[on("cmd.reset", "resetting")]),
                    _acting("suspending", make_safe, "suspended"),
                    State("suspended", transitions=[on("cmd.unsuspend", "unsuspending")]),
                    _acting("unsuspending", complete_at_once, "execute"),
                    initial="resetting",
                    transitions=[on("cmd.stop", "stopping")],
                ),
                _acting("stopping", make_safe, "stopped"),
                _acting("clearing", complete_at_once, "stopped"),
                initial="stopped",
                activities=watch_interlocks,
                transitions=[
                    on("cmd.abort", "aborting", action=note_reason),
                    on("interlock.tripped", "aborting", action=note_reason),
                    on(ERROR, "aborting", action=note_reason),
                ],
            ),
            _acting("aborting", halt, "aborted"),
            State("aborted", transitions=[on("cmd.clear", "clearing")]),
            initial="live",
            transitions=[on(ERROR, "aborted", action=note_reason)],
        ),
        description="cell mode after PackML (ISA-TR88): commands, task cycles, hold/suspend/stop/abort",
    )
