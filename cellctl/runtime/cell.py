"""Runs the cell chart on a Workcell: the one place `sim`, `run` and `replay` share.

Operator and FC commands (`cmd.reset`, `cmd.start`, `cmd.stop`, ...) reach the chart as `Command`s: a
command may wait for a state first (start once idle), and every command posted is logged, with that
state, so replay posts it at the same point of the run.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio

from statecharts import cell
from statecharts.engine import ChartRunner, TraceHook, TraceRecord
from statecharts.tasks import TaskConfig
from statecharts.workcell import Workcell

END_STATES = ("complete", "suspended", "aborted", "stopped")
COMMANDS_KEPT = 1000  # a cell takes commands for months: the log has them all, the runner the latest


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    after_state: str | None = None  # wait until this state is active before posting
    at_s: float | None = None  # not before this time (replay)
    data: str | None = None  # the event's data (an alarm's text)


class TraceHasher:
    """A trace hook: SHA-256 over every transition (time in µs, chart, source, targets, event)."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.transitions = 0

    def __call__(self, r: TraceRecord) -> None:
        if r.kind == "transition":
            self.transitions += 1
            self._h.update(f"{round(r.time * 1e6)}|{r.chart}|{r.state}|{','.join(r.target)}|{r.event}\n".encode())

    def hexdigest(self) -> str:
        return self._h.hexdigest()


@dataclass
class CellRun:
    """A running cell chart and its data; `post` logs and posts a command."""

    runner: ChartRunner
    data: cell.CellData
    on_command: Callable[[Command], None] | None = None
    commands: deque[Command] = field(default_factory=lambda: deque(maxlen=COMMANDS_KEPT))  # the latest (all logged)

    async def command(self, cmd: Command) -> None:
        if cmd.at_s is not None:
            delay = cmd.at_s - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
        if cmd.after_state is not None:
            await self.runner.wait_for(cmd.after_state)
        self.commands.append(cmd)
        if self.on_command is not None:
            self.on_command(cmd)
        self.runner.post(cmd.name, cmd.data)

    def state(self) -> str:
        """The innermost active cell state (for the status line)."""
        leaves = [s for s in self.runner.configuration if not self.runner.chart.by_id[s].children]
        return ",".join(sorted(leaves)) or "-"

    async def wait_end(self) -> str:
        """Wait until the cell rests in an end state; return its name."""
        return await self.wait_any(END_STATES)

    async def wait_any(self, states: Sequence[str]) -> str:
        """Wait until one of `states` is active once the chart is idle; return its name."""
        while True:
            await self.runner.wait_idle()
            for s in states:
                if self.runner.is_active(s):
                    return s
            async with anyio.create_task_group() as tg:

                async def wait_one(name: str) -> None:
                    await self.runner.wait_for(name)
                    tg.cancel_scope.cancel()

                for s in states:
                    tg.start_soon(wait_one, s)


def cell_runner(
    workcell: Workcell,
    *,
    task: cell.TaskMix,
    max_cycles: int | None,
    hooks: Sequence[TraceHook],
    config: TaskConfig | None = None,
    fault_repeat: cell.FaultRepeat | None = None,
    task_prefix: str = "",
) -> tuple[ChartRunner, cell.CellData]:
    data = cell.CellData(workcell=workcell, task=task, max_cycles=max_cycles, trace_hooks=tuple(hooks),
                         config=config or TaskConfig(), fault_repeat=fault_repeat, task_prefix=task_prefix)
    return ChartRunner(cell.build(), data=data, trace=tuple(hooks)), data


async def start_cell(
    tg: anyio.abc.TaskGroup, runner: ChartRunner, data: cell.CellData,
    on_command: Callable[[Command], None] | None = None,
) -> CellRun:
    await tg.start(runner.run)
    return CellRun(runner, data, on_command)

