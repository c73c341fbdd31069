"""Running one task: `run_task` picks the stow or pick chart, runs it and returns the report it sent (or `Starved`).

No report is ever lost: when the task is cancelled (hold, stop, abort) after it took an item or an order, the
report it had built (or an ``interrupted`` fault report) is still sent, shielded and bounded.

The charts import what they share from `task_base`, `task_actions` and `task_chart`, never this module, so it
imports them at the top; the names the cell and its callers use from here (`TaskConfig`, `bounded`, ...) are
re-exported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from . import pick, stow
from .engine import ChartFinishedError, ChartRunner, TraceHook
from .task_actions import motion_activity
from .task_base import FATAL, GUARDED, Failure, Step, TaskConfig, TaskData, TaskKind, bounded, guarded, make_arm_safe
from .task_chart import TASK_HOLD, TASK_UNHOLD
from .workcell import TaskOutcome, TaskReport, Workcell

__all__ = [
    "FATAL",
    "GUARDED",
    "Failure",
    "Starved",
    "Step",
    "TaskConfig",
    "TaskControl",
    "TaskData",
    "TaskKind",
    "bounded",
    "guarded",
    "make_arm_safe",
    "motion_activity",
    "run_task",
]


@dataclass(frozen=True, slots=True)
class Starved:
    """A task that ended without work: ``waits`` empty waits in a row, nothing taken, nothing reported."""

    kind: TaskKind
    task_id: str
    waits: int


class TaskControl:
    """The cell's hold on its tasks (PackML Hold pauses the task running, it does not end it).

    `hold()` asks the task running now to pause (its chart's `pausing` makes the arm safe) and returns True
    once it is `paused`, False when no task runs or it ended instead (it was recovering or reporting).
    While held no task starts: the cell's task loop waits at `gate()`. `unhold()` resumes the paused task
    and opens the gate. The runner is attached by `run_task` before the task's first await, so a hold always
    finds either no task or a runner to post to.
    """

    def __init__(self) -> None:
        self.held = False
        self._runner: ChartRunner[Any] | None = None
        self._resumed = anyio.Event()

    def attach(self, runner: ChartRunner[Any] | None) -> None:
        self._runner = runner

    async def hold(self) -> bool:
        self.held = True
        runner = self._runner
        if runner is None or runner.finished.is_set():
            return False
        runner.post(TASK_HOLD)
        try:
            await runner.wait_for("paused")
        except ChartFinishedError:
            return False
        return True

    def unhold(self) -> None:
        self.release()
        runner = self._runner
        if runner is not None and "paused" in runner.configuration:
            runner.post(TASK_UNHOLD)

    def release(self) -> None:
        """Open the gate without resuming anything (the task loop is being cancelled: stop, abort)."""
        self.held = False
        self._resumed.set()
        self._resumed = anyio.Event()

    async def gate(self) -> None:
        """Return when the cell is not held."""
        while self.held:
            await self._resumed.wait()


# -- running one task ----------------------------------------------------------------------------------------


async def run_task(
    kind: TaskKind,
    workcell: Workcell,
    *,
    task_id: str,
    trace_hooks: TraceHook | Sequence[TraceHook] = (),
    config: TaskConfig | None = None,
    on_unreturned: Callable[[TaskReport], None] | None = None,
    control: TaskControl | None = None,
) -> TaskReport | Starved:
    """Run the `kind` chart to its end; return the report it delivered, or `Starved`.

    When the task is cancelled, the report it owed is still delivered (shielded, bounded) but cannot be
    returned: `on_unreturned` is called with it, so the caller's counters agree with the reports sent.
    `control`: the cell's hold on the task (`TaskControl`), attached to it while it runs.
    """
    config = config or TaskConfig()
    data: TaskData
    if kind == "stow":
        chart, data = stow.build(config), stow.StowData(workcell, task_id=task_id, config=config)
    elif kind == "pick":
        chart, data = pick.build(config), pick.PickData(workcell, task_id=task_id, config=config)
    else:
        raise ValueError(f"unknown task kind {kind!r}: use 'stow' or 'pick'")
    data.started_s = anyio.current_time()
    runner = ChartRunner(chart, data=data, trace=trace_hooks)
    if control is not None:  # before the first await: a hold finds this runner (the loop's gate let it start)
        control.attach(runner)
    try:
        final = await runner.run()
    except BaseException:
        if data.taken and not data.delivered:
            await _deliver_anyway(data)
        if data.delivered and data.report is not None and on_unreturned is not None:
            on_unreturned(data.report)
        raise
    finally:
        if control is not None:
            control.attach(None)
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
