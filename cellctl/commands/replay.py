"""Replay: recorded port replies fed back through the current charts on virtual time, compared with the record.

The log's `port.call`/`port.reply` records stand in for the cell: each call the charts make now must equal
the next recorded call (method and arguments), and gets the recorded reply after the recorded delay.
Chart transitions are compared one by one with `chart.transition` records. The first difference, in a
command or a transition, is the divergence; replay stops there.

A log without `run.end` (a `cellctl run` that was killed, or a file torn short) is replayed as far as it goes:
what the charts do at its end, beyond the last record, is not held against them (within the log's time
tolerance of its last record), and the replay reports where the log ends instead of a divergence. A log with
no port calls and no transitions (the cell never ran) has nothing to replay.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio

from cellctl.workcells.replay import (
    END_SLACK_S,
    Comparator,
    Divergence,
    Entry,
    ReplayError,
    ReplayLog,
    ReplayWorkcell,
)

if TYPE_CHECKING:
    from cellctl.eventlog import LogEnding

__all__ = ["Entry", "ReplayError", "ReplayLog", "replay", "replay_log"]


async def _replay(log: ReplayLog, incomplete: bool) -> tuple[Comparator, float]:
    from cellctl.runtime.cell import (  # runtime.cell imports the charts: keep this module light
        Command,
        cell_runner,
        start_cell,
    )

    comparator = Comparator(log, incomplete)
    port = ReplayWorkcell(comparator)
    task = log.meta.get("task", "stow")
    cycles = log.meta.get("cycles")
    prefix = log.meta.get("task_prefix", "")  # a run's boot tag: the task ids the record holds
    runner, data = cell_runner(port, task=task, max_cycles=cycles, hooks=[comparator.trace],
                               task_prefix=prefix if isinstance(prefix, str) else "")
    with anyio.CancelScope() as scope:
        comparator.scope = scope
        async with anyio.create_task_group() as tg:
            if incomplete:  # past its last record the log has nothing to compare: stop there
                tg.start_soon(_stop_at, comparator, log.last_s + log.time_tol_s + END_SLACK_S)
            run = await start_cell(tg, runner, data)
            for t, name, after, data_ in log.commands:
                await run.command(Command(name, after_state=after, at_s=t, data=data_))
            await run.wait_end()
            await runner.wait_idle()
            tg.cancel_scope.cancel()
    if comparator.first is None and comparator.transitions < len(log.transitions):
        t, expected = log.transitions[comparator.transitions]
        if not comparator.at_end(t):  # at an incomplete log's end, the record may hold what a kill interrupted
            comparator.first = Divergence(t, "transition", expected, "(replay ended)")
    end = comparator.stopped_s if comparator.stopped_s is not None else anyio.current_time()
    return comparator, end - log.start_s


async def _stop_at(comparator: Comparator, t_s: float) -> None:
    await anyio.sleep(max(0.0, t_s - anyio.current_time()))
    comparator.stopped_s = anyio.current_time()
    assert comparator.scope is not None
    comparator.scope.cancel()


def replay(entries: Iterable[Entry], *, ending: LogEnding | None = None) -> dict[str, Any]:
    """Replay a log; the summary `cellctl replay --json` prints. `ending` (the reader's) tells a torn file."""
    return replay_log(ReplayLog.of(entries), ending=ending)


def replay_log(log: ReplayLog, *, ending: LogEnding | None = None) -> dict[str, Any]:
    """Replay a split log. The summary's `ending` is "complete" or "incomplete" (no run.end: `message` says
    where the log ends); `replayed` is False when there was nothing to replay."""
    import time

    from statecharts.engine import VirtualClock

    incomplete = log.incomplete(ending)
    t0 = time.perf_counter()
    if log.empty:
        comparator, virtual = Comparator(log, incomplete), 0.0
    else:
        comparator, virtual = VirtualClock(start=log.start_s).run(_replay, log, incomplete)
    wall = time.perf_counter() - t0
    first = comparator.first
    return {
        "records": log.records,
        "transitions": comparator.transitions,
        "recorded_transitions": len(log.transitions),
        "diverged": first is not None,
        "first_divergence": first.as_dict() if first is not None else None,
        "virtual_s": round(virtual, 3),
        "wall_s": round(wall, 3),
        "speedup": round(virtual / wall, 1) if wall > 0 and not log.empty else None,
        "replayed": not log.empty,
        "ending": "incomplete" if incomplete else "complete",
        "file_ending": ending.as_dict() if ending is not None else None,
        "message": _message(log, incomplete, ending),
    }


def _message(log: ReplayLog, incomplete: bool, ending: LogEnding | None) -> str | None:
    parts = []
    if log.empty:
        state = f" (end_state {log.end['end_state']!r})" if log.end is not None and "end_state" in log.end else ""
        parts.append(f"nothing to replay: the cell never ran{state}")
    if incomplete:
        text = f"log ends without run.end at t={log.last_s:.3f}"
        if ending is not None and ending.kind != "complete":
            text += f"; the file is {ending.describe()}"
        parts.append(text)
    return "; ".join(parts) or None
