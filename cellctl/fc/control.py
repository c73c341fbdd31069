"""`CellControl`: what the FC server sees of the cell and may do to it; `ChartControl`, over the running chart.

The server reads `state()` and `counters()` (a snapshot) at its refresh rate, asks `allowed(event)` before it
posts a command, and posts with `post(event)`. `ChartControl` answers from the `cell` chart itself:

- `allowed` is derived from the chart's transitions: an event is allowed when an active state (the innermost one
  or an ancestor) has a transition on it. Guards are not evaluated (the cell chart's command transitions have
  none); a guarded transition counts as allowed. Between the check and the chart taking the event the chart may
  move on (an alarm holds the cell); the event is then ignored by the chart, as any stale command is.
- `post` goes through `CellRun.command`, so an FC command is logged (and replayed) like an operator's.
- the stow / pick split and the faults per reason are tallied from `CellData.reports` (the latest
  `statecharts.cell.REPORTS_KEPT`), looked at on every `counters()` call; the other figures are `CellData`'s.
- the current task is `CellData.current_task` while `execute` runs one (without that field, the id is rebuilt from
  `CellData.seq` the way `statecharts.cell.execute_cycles` names tasks); its item and bin stay blank: the running
  task's data is private to `statecharts.tasks.run_task` until the chart exposes it.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from cellctl.runtime.cell import CellRun, Command
from statecharts.cell import CellData
from statecharts.engine import ChartRunner
from statecharts.workcell import TaskOutcome, TaskReport

__all__ = ["CellControl", "CellCounters", "ChartControl", "CurrentTask"]


@dataclass(frozen=True, slots=True)
class CurrentTask:
    """The task the cell is working on ("" everywhere when none)."""

    task_id: str = ""
    kind: str = ""
    item_id: str = ""
    bin_id: str = ""


def _empty() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CellCounters:
    """The figures the FC server shows; counts are totals since the controller started unless said otherwise."""

    cycles: int = 0  # tasks reported since the last Reset (what max_cycles counts against)
    reports: int = 0  # tasks reported in total
    stows: int = 0
    picks: int = 0
    done: int = 0
    handoffs: int = 0
    faults: int = 0
    interrupted: int = 0  # of the faults: tasks cut short by a hold, suspend, stop or abort (since the last Reset)
    handoffs_by_reason: Mapping[str, int] = field(default_factory=_empty)
    faults_by_reason: Mapping[str, int] = field(default_factory=_empty)
    task: CurrentTask = field(default_factory=CurrentTask)
    alarm: str = ""  # why the cell holds ("" when it does not)
    stop_reason: str = ""  # why the cell last aborted or failed to make itself safe
    starved: bool = False  # suspended after a task starved (CellData.last_starved, which the chart never clears)


@runtime_checkable
class CellControl(Protocol):
    """The cell as the FC server drives it."""

    def state(self) -> str:
        """The cell chart's innermost active state id (`execute`, `held`, ...)."""
        ...

    def allowed(self, event: str) -> bool:
        """Would the cell take `event` (`cmd.start`, ...) in its current state?"""
        ...

    async def post(self, event: str) -> None:
        """Post `event` to the cell (logged like any command)."""
        ...

    def counters(self) -> CellCounters:
        """A snapshot of the figures."""
        ...


class _ReportTally:
    """Counts reports by kind and fault reason from a bounded deque that only ever grows at its right end."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.fault_reasons: Counter[str] = Counter()
        self._last: TaskReport | None = None

    def update(self, reports: deque[TaskReport]) -> None:
        fresh: list[TaskReport] = []
        for report in reversed(reports):  # newest first, back to the last one counted
            if report is self._last:
                break
            fresh.append(report)
        # If the last one counted has left the deque, more than its length came in between: a lower bound.
        for report in reversed(fresh):
            self.kinds[report.task] += 1
            if report.outcome is TaskOutcome.FAULT:
                self.fault_reasons[report.reason.split(":")[0]] += 1
        if reports:
            self._last = reports[-1]


class ChartControl:
    """`CellControl` over a running cell chart: `ChartControl.of(cell_run)`, or from its parts (tests)."""

    def __init__(self, runner: ChartRunner, data: CellData, post: Callable[[str], Awaitable[None]]) -> None:
        self.runner = runner
        self.data = data
        self._post = post
        self._tally = _ReportTally()

    @classmethod
    def of(cls, run: CellRun) -> ChartControl:
        async def post(event: str) -> None:
            await run.command(Command(event))

        return cls(run.runner, run.data, post)

    def state(self) -> str:
        chart = self.runner.chart
        leaves = sorted(s for s in self.runner.configuration if not chart.by_id[s].children)
        return leaves[0] if leaves else ""  # the cell chart has no parallel regions: one leaf

    def allowed(self, event: str) -> bool:
        chart = self.runner.chart
        return any(edge.matches(event) for s in self.runner.configuration for edge in chart.by_id[s].transitions)

    async def post(self, event: str) -> None:
        await self._post(event)

    def counters(self) -> CellCounters:
        data = self.data
        self._tally.update(data.reports)
        state = self.state()
        return CellCounters(
            cycles=data.cycles,
            reports=sum(data.counts.values()),
            stows=self._tally.kinds["stow"],
            picks=self._tally.kinds["pick"],
            done=data.counts[TaskOutcome.DONE.value],
            handoffs=data.counts[TaskOutcome.HANDOFF.value],
            faults=data.counts[TaskOutcome.FAULT.value],
            interrupted=data.interrupted,
            handoffs_by_reason=MappingProxyType(dict(data.handoff_reasons)),
            faults_by_reason=MappingProxyType(dict(self._tally.fault_reasons)),
            task=self._current_task(state),
            alarm=data.alarm,
            stop_reason=data.stop_reason,
            starved=state == "suspended" and data.last_starved is not None,
        )

    def _current_task(self, state: str) -> CurrentTask:
        data = self.data
        if state != "execute" or data.seq == 0:
            return CurrentTask()
        seq = data.seq - 1
        kind = data.kind_for(seq)
        running: str | None = getattr(data, "current_task", None)  # CellData keeps it (issue 12); older: rebuild
        if running is not None:
            return CurrentTask(task_id=running, kind=kind) if running else CurrentTask()
        task_id = f"{kind}-{seq:06d}"  # as statecharts.cell.execute_cycles names it
        if data.reports and data.reports[-1].task_id == task_id:
            return CurrentTask()  # reported; the next one has not started yet
        return CurrentTask(task_id=task_id, kind=kind)
