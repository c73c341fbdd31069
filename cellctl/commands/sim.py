"""`cellctl sim`: the cell charts and the simulated world on virtual time, in-process, from a seed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio

from cellctl import __version__
from cellctl.config import PerceptionSection
from cellctl.eventlog import EventLog
from cellctl.eventlog.recorder import LogRecorder
from cellctl.runtime.cell import Command, TraceHasher, cell_runner, start_cell
from cellctl.workcells.recording import COMMAND, RecordingWorkcell
from cellctl.workcells.sim import SimWorkcell
from cellctl.workcells.sources import make_perception
from drivers.sim.cell import SimCell
from drivers.sim.faults import profile
from statecharts.cell import TaskMix
from statecharts.engine import VirtualClock

PerceptionKind = Literal["learned", "oracle"]
PERCEPTION_KINDS: tuple[PerceptionKind, ...] = ("learned", "oracle")


@dataclass(frozen=True)
class SimOptions:
    task: TaskMix
    cycles: int
    seed: int
    faults: str = "none"
    log: Path | None = None
    overwrite: bool = True
    perception: PerceptionKind = "learned"
    models: PerceptionSection | None = None  # the learned models' files ([perception]); None: the shipped ones

    def __post_init__(self) -> None:
        if self.task not in ("stow", "pick", "mixed"):
            raise ValueError(f"task must be stow, pick or mixed, got {self.task!r}")
        if self.cycles < 1:
            raise ValueError(f"cycles must be >= 1, got {self.cycles}")
        profile(self.faults)  # raises with the known names
        if self.perception not in PERCEPTION_KINDS:
            raise ValueError(f"perception must be one of {', '.join(PERCEPTION_KINDS)}, got {self.perception!r}")


def meta(opts: SimOptions) -> dict[str, Any]:
    return {"mode": "sim", "task": opts.task, "cycles": opts.cycles, "seed": opts.seed, "faults": opts.faults,
            "perception": opts.perception, "cellctl": __version__}


async def simulate(opts: SimOptions) -> dict[str, Any]:
    """Run `opts.cycles` task cycles; the summary `cellctl sim --json` prints (without wall_s)."""
    log = EventLog.open(opts.log, overwrite=opts.overwrite) if opts.log is not None else None
    try:
        recorder = LogRecorder(log) if log is not None else None
        cell = SimCell(opts.seed, profile(opts.faults))
        sim = SimWorkcell(cell, recorder=recorder, perception=make_perception(
            (opts.models or PerceptionSection()).model_copy(update={"mode": opts.perception}), cell))
        hasher = TraceHasher()
        hooks: list[Any] = [hasher]
        port: Any = sim
        if recorder is not None:
            recorder.record("run.meta", anyio.current_time(), meta(opts))
            port = RecordingWorkcell(sim, recorder)
            hooks.append(port.trace)
        runner, data = cell_runner(port, task=opts.task, max_cycles=opts.cycles, hooks=hooks)

        def logged(cmd: Command) -> None:
            if recorder is not None:
                recorder.record(COMMAND, anyio.current_time(), {"command": cmd.name, "after_state": cmd.after_state})

        async with anyio.create_task_group() as tg:
            run = await start_cell(tg, runner, data, logged)
            await run.command(Command("cmd.reset"))
            await run.command(Command("cmd.start", after_state="idle"))
            end = await run.wait_end()
            tg.cancel_scope.cancel()
        virtual = anyio.current_time()
    finally:
        if log is not None:
            log.close()
    reasons = data.handoff_reasons
    done = data.counts.get("done", 0)
    return {
        "task": opts.task, "seed": opts.seed, "cycles": data.cycles, "faults": opts.faults,
        "perception": opts.perception, "end_state": end,
        "outcomes": {k: data.counts.get(k, 0) for k in ("done", "handoff", "fault")},
        "by_task": {t: {k: data.by_task.get((t, k), 0) for k in ("done", "handoff", "fault")}
                    for t in ("stow", "pick") if any(data.by_task.get((t, k)) for k in ("done", "handoff", "fault"))},
        "wrong_item_picks": sim.cell.wrong_items,  # the tote check: picked, but not the item ordered
        "handoff_reasons": dict(sorted(reasons.items())),
        "virtual_s": round(virtual, 3),
        "units_per_hour": round(done * 3600.0 / virtual, 1) if virtual > 0 else 0.0,
        "trace_sha256": hasher.hexdigest(), "transitions": hasher.transitions,
        "reports": sum(data.counts.values()),
        "log": str(opts.log) if opts.log is not None else None,
    }


def run_sim(opts: SimOptions) -> dict[str, Any]:
    t0 = time.perf_counter()
    summary = VirtualClock().run(simulate, opts)
    summary["wall_s"] = round(time.perf_counter() - t0, 3)
    return summary
