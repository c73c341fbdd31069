"""Benchmark: a long fault campaign — every taken item and order reported exactly once, memory flat.

Each seed runs `cellctl sim` in-process on virtual time (`cellctl.commands.sim.run_sim`, the function the CLI
calls): the cell chart with its stow and pick charts against the simulated cell under a fault profile
(`harsh` by default), for `--cycles` task cycles. The seeds run one after another in this one process,
so whatever a run leaves behind (caches, registries, hooks) shows up as memory growth across runs, as it
would on a controller that runs shift after shift.

Counted at the Workcell port (the simulated cell's port, wrapped): every item (`next_item`) and order
(`next_order`) handed to a task, and every report the workcell received. A task that took an item or an
order owes one report: `missing` counts takes no report answers (matched on task kind and item id),
`duplicated` the task ids reported more than once, `unmatched` the reports no take explains. `crashes`
counts seeds whose run raised (caught, printed, the campaign goes on) or did not end `complete`.

Memory: the current RSS (VmRSS, after `gc.collect()`) and its high-water mark (VmHWM) of this process,
sampled at the port as the campaign's 500th report arrives (half the campaign when it is shorter than
1,000 cycles) and as its last one arrives; growth per cycle is the current RSS's increase between the
two over the cycles between them. After each seed (its run released) the current RSS is shown too.

Usage: python bench/faults.py [--seeds N] [--cycles N] [--task stow|pick|mixed] [--faults NAME] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from unittest import mock

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from cellctl.commands import sim as simrun
from cellctl.commands.sim import SimOptions, run_sim
from cellctl.workcells.sim import SimWorkcell
from drivers.sim.cell import SimCell
from drivers.sim.faults import PROFILES
from statecharts.workcell import ItemArrival, PickOrder, TaskReport

BASELINE_CYCLE = 500  # the RSS growth is measured from the campaign's 500th cycle on
AIM_GROWTH_KB_PER_CYCLE = 5.0
OUTCOMES = ("done", "handoff", "fault")
DETAIL_LIMIT = 10  # missing / duplicated / unmatched entries listed per seed


# -- counting ------------------------------------------------------------------------------------------------


class Taken(NamedTuple):
    """An item or an order the port handed to a task: from then on a report is owed."""

    kind: str  # "stow" (an item) or "pick" (an order)
    item_id: str
    order_id: str = ""
    t_s: float = 0.0  # virtual time


@dataclass(frozen=True)
class Tally:
    reports: int
    tasks: int  # distinct task ids reported
    taken: int
    missing: list[Taken]
    duplicated: list[str]  # task ids reported more than once
    unmatched: list[str]  # task ids of reports no take explains


def tally(taken: Iterable[Taken], reports: Iterable[TaskReport]) -> Tally:
    """Match takes with reports on (task kind, item id).

    The simulated conveyor offers an item again after a stow that did not grasp it, and an item may be
    ordered again after a failed pick, so a key may be taken several times: each take needs a report from
    a task of its own (a duplicate does not stand in for a missing one)."""
    taken, reports = list(taken), list(reports)
    per_id = Counter(r.task_id for r in reports)
    takes: dict[tuple[str, str], list[Taken]] = defaultdict(list)
    for t in taken:
        takes[(t.kind, t.item_id)].append(t)
    ids: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in reports:
        key = (r.task, r.item_id)
        if r.task_id not in ids[key]:
            ids[key].append(r.task_id)
    missing = [t for key, ts in takes.items() for t in ts[len(ids.get(key, ())):]]
    unmatched = [i for key, tids in ids.items() for i in tids[len(takes.get(key, ())):]]
    return Tally(
        reports=len(reports), tasks=len(per_id), taken=len(taken), missing=sorted(missing, key=lambda t: t.t_s),
        duplicated=sorted(i for i, n in per_id.items() if n > 1), unmatched=sorted(unmatched),
    )  # fmt: skip


class CountingWorkcell(SimWorkcell):
    """The simulated cell's port, noting what it handed out; `SimWorkcell.reports` keeps every report."""

    def __init__(self, cell: SimCell, *, on_report: Callable[[], None] = lambda: None, **kwargs: Any) -> None:
        super().__init__(cell, **kwargs)
        self.taken: list[Taken] = []
        self.on_report = on_report

    async def next_item(self, timeout_s: float) -> ItemArrival | None:
        item = await super().next_item(timeout_s)
        if item is not None:
            self.taken.append(Taken("stow", item.item_id, "", anyio.current_time()))
        return item

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        order = await super().next_order(timeout_s)
        if order is not None:
            self.taken.append(Taken("pick", order.item_id, order.order_id, anyio.current_time()))
        return order

    async def report(self, report: TaskReport) -> None:
        await super().report(report)
        self.on_report()


# -- memory --------------------------------------------------------------------------------------------------


def rss_kb() -> tuple[int, int]:
    """(current RSS, max RSS) of this process in kB, after a full collection."""
    gc.collect()
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:  # no procfs: getrusage's max RSS for both
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = peak // 1024 if sys.platform == "darwin" else peak  # bytes there, kB on Linux
        return peak, peak
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


@dataclass
class Memory:
    """RSS samples at two cumulative report counts (the baseline and the campaign's last cycle)."""

    baseline_cycle: int
    last_cycle: int
    reports: int = 0
    samples: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name: (cycle, rss, max rss)

    def on_report(self) -> None:
        self.reports += 1
        if self.reports == self.baseline_cycle:
            self.sample("baseline")
        if self.reports == self.last_cycle:
            self.sample("end")

    def sample(self, name: str) -> None:
        self.samples[name] = (self.reports, *rss_kb())

    def finish(self) -> None:
        """A campaign cut short (a crash) takes its missing samples now."""
        for name in ("baseline", "end"):
            if name not in self.samples:
                self.sample(name)

    def growth_kb_per_cycle(self) -> float | None:
        (c0, r0, _), (c1, r1, _) = self.samples["baseline"], self.samples["end"]
        return round((r1 - r0) / (c1 - c0), 3) if c1 > c0 else None


def baseline_cycle(total: int) -> int:
    return BASELINE_CYCLE if total >= 2 * BASELINE_CYCLE else max(1, total // 2)


# -- the campaign ----------------------------------------------------------------------------------------------


def run_seed(opts: SimOptions, on_report: Callable[[], None]) -> dict[str, Any]:
    """One seed's `cellctl sim` run with the port counted; an exception is caught and described."""
    ports: list[CountingWorkcell] = []

    def make_port(cell: SimCell, **kwargs: Any) -> CountingWorkcell:
        port = CountingWorkcell(cell, on_report=on_report, **kwargs)
        ports.append(port)
        return port

    summary: dict[str, Any] = {}
    error = ""
    t0, cpu0 = time.perf_counter(), time.process_time()
    # `simulate` builds its SimWorkcell itself: ours is put in its place for the run.
    with mock.patch.object(simrun, "SimWorkcell", make_port):
        try:
            summary = run_sim(opts)
        except Exception as exc:
            error = "".join(traceback.format_exception_only(exc)).strip()
            print(f"seed {opts.seed}: the run raised:\n{traceback.format_exc()}", file=sys.stderr)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if not ports and not error:
        raise RuntimeError("bench broken: the simulation ran without the counting port")
    counted = tally(ports[0].taken, ports[0].reports) if ports else tally((), ())
    outcomes = Counter(r.outcome.value for r in ports[0].reports) if ports else Counter()
    ports.clear()  # the run is released before the next seed (and before its RSS is sampled)
    end_state = summary.get("end_state", "raised")
    crash = error or ("" if end_state == "complete" else f"ended in {end_state}")
    return {
        "seed": opts.seed,
        "cycles": summary.get("cycles", 0),
        "reports": counted.reports,
        "chart_reports": summary.get("reports", 0),  # the cell chart's count (CellData.reports)
        "tasks": counted.tasks,
        "taken": counted.taken,
        "outcomes": {k: outcomes.get(k, 0) for k in OUTCOMES},
        "missing": len(counted.missing),
        "duplicated": len(counted.duplicated),
        "unmatched": len(counted.unmatched),
        "missing_takes": [t._asdict() for t in counted.missing[:DETAIL_LIMIT]],
        "duplicated_ids": counted.duplicated[:DETAIL_LIMIT],
        "unmatched_ids": counted.unmatched[:DETAIL_LIMIT],
        "end_state": end_state,
        "crash": crash,
        "virtual_s": summary.get("virtual_s", 0.0),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),  # CPU time of this process: tells a slower run from a busy machine
    }


def run(seeds: int, cycles: int, task: str = "mixed", faults: str = "harsh", first_seed: int = 1,
        progress: Callable[[dict[str, Any]], None] | None = None, perception: str = "oracle") -> dict[str, Any]:
    total = seeds * cycles
    memory = Memory(baseline_cycle(total), total)
    t0, cpu0 = time.perf_counter(), time.process_time()
    per_seed = []
    for seed in range(first_seed, first_seed + seeds):
        opts = SimOptions(task, cycles, seed, faults, perception=perception)  # type: ignore[arg-type]
        row = run_seed(opts, memory.on_report)
        row["rss_kb"] = rss_kb()[0]
        per_seed.append(row)
        if progress is not None:
            progress(row)
    memory.finish()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    base, end = memory.samples["baseline"], memory.samples["end"]
    result: dict[str, Any] = {
        "task": task,
        "faults": faults,
        "seeds": seeds,
        "first_seed": first_seed,
        "cycles_per_seed": cycles,
        "cycles": sum(r["cycles"] for r in per_seed),
        "reports": sum(r["reports"] for r in per_seed),
        "tasks": sum(r["tasks"] for r in per_seed),
        "taken": sum(r["taken"] for r in per_seed),
        "outcomes": {k: sum(r["outcomes"][k] for r in per_seed) for k in OUTCOMES},
        "missing": sum(r["missing"] for r in per_seed),
        "duplicated": sum(r["duplicated"] for r in per_seed),
        "unmatched": sum(r["unmatched"] for r in per_seed),
        "crashes": sum(1 for r in per_seed if r["crash"]),
        "rss_baseline_cycle": base[0],
        "rss_end_cycle": end[0],
        "rss_kb_at_500": base[1],
        "rss_kb_at_end": end[1],
        "rss_max_kb_at_500": base[2],
        "rss_max_kb_at_end": end[2],
        "rss_growth_kb_per_cycle": memory.growth_kb_per_cycle(),
        "aim_growth_kb_per_cycle": AIM_GROWTH_KB_PER_CYCLE,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "per_seed": per_seed,
    }
    result["aims_missed"] = missed(result)
    return result


def missed(r: dict[str, Any]) -> list[str]:
    """The aims the campaign missed: 0 missing, 0 duplicated, 0 crashes, growth < 5 kB per cycle."""
    out = [f"{key} {r[key]} (aim 0)" for key in ("missing", "duplicated", "crashes") if r[key]]
    growth = r["rss_growth_kb_per_cycle"]
    if growth is None:
        out.append("rss growth not measured (fewer than 2 cycles)")
    elif growth >= AIM_GROWTH_KB_PER_CYCLE:
        out.append(f"rss growth {growth} kB/cycle (aim < {AIM_GROWTH_KB_PER_CYCLE:g})")
    return out


# -- output ----------------------------------------------------------------------------------------------------

HEADER = (f"{'seed':>5}{'cycles':>8}{'reports':>9}{'done':>6}{'handoff':>9}{'fault':>7}{'missing':>9}"
          f"{'dup':>5}{'end state':>11}{'virtual h':>11}{'wall s':>8}{'CPU s':>7}{'RSS MB':>8}")


def show_row(r: dict[str, Any]) -> None:
    o = r["outcomes"]
    print(f"{r['seed']:>5}{r['cycles']:>8}{r['reports']:>9}{o['done']:>6}{o['handoff']:>9}{o['fault']:>7}"
          f"{r['missing']:>9}{r['duplicated']:>5}{r['end_state']:>11}{r['virtual_s'] / 3600:>11.2f}"
          f"{r['wall_s']:>8.1f}{r['cpu_s']:>7.1f}{r['rss_kb'] / 1024:>8.1f}", flush=True)


def show_totals(r: dict[str, Any]) -> None:
    o = r["outcomes"]
    print(f"{'all':>5}{r['cycles']:>8}{r['reports']:>9}{o['done']:>6}{o['handoff']:>9}{o['fault']:>7}"
          f"{r['missing']:>9}{r['duplicated']:>5}{'':>11}{'':>11}{r['wall_s']:>8.1f}{r['cpu_s']:>7.1f}")
    print(f"tasks reported {r['tasks']}, items/orders taken {r['taken']}, reports without a take {r['unmatched']}, "
          f"crashes {r['crashes']}")
    for s in r["per_seed"]:
        if s["crash"]:
            print(f"  seed {s['seed']} CRASH: {s['crash']}")
        if s["reports"] != s["chart_reports"]:
            print(f"  seed {s['seed']}: the port received {s['reports']} reports, the cell chart counted "
                  f"{s['chart_reports']}")
        for t in s["missing_takes"]:
            what = f"order {t['order_id']} (item {t['item_id']})" if t["order_id"] else f"item {t['item_id']}"
            print(f"  seed {s['seed']} MISSING: {t['kind']} {what} taken at {t['t_s']:.1f} s, never reported")
        for i in s["duplicated_ids"]:
            print(f"  seed {s['seed']} DUPLICATED: {i} reported more than once")
        for i in s["unmatched_ids"]:
            print(f"  seed {s['seed']}: report of {i} matches no item or order taken")
    growth = r["rss_growth_kb_per_cycle"]
    print(f"RSS at cycle {r['rss_baseline_cycle']}: {r['rss_kb_at_500'] / 1024:.1f} MB (max "
          f"{r['rss_max_kb_at_500'] / 1024:.1f} MB); at cycle {r['rss_end_cycle']}: {r['rss_kb_at_end'] / 1024:.1f} MB "
          f"(max {r['rss_max_kb_at_end'] / 1024:.1f} MB); growth "
          + ("n/a" if growth is None else f"{growth:.3f} kB/cycle"))
    print("aims (0 missing, 0 duplicated, 0 crashes, growth < 5 kB/cycle): "
          + ("met" if not r["aims_missed"] else "MISSED: " + "; ".join(r["aims_missed"])))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds, run one after another (default 10)")
    parser.add_argument("--cycles", type=int, default=500, help="task cycles per seed (default 500)")
    parser.add_argument("--task", choices=("stow", "pick", "mixed"), default="mixed", help="default mixed")
    parser.add_argument("--faults", choices=tuple(PROFILES), default="harsh", help="fault profile (default harsh)")
    parser.add_argument("--first-seed", type=int, default=1, help="the first seed (default 1)")
    parser.add_argument("--perception", choices=("oracle", "learned"), default="oracle",
                        help="the cell's perception (default oracle: the campaign is of the controller's fault "
                             "handling; learned runs the models on every frame, several times slower)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if args.cycles < 1:
        parser.error("--cycles must be >= 1")
    if args.first_seed < 0:
        parser.error("--first-seed must be >= 0")
    progress = None
    if not args.json:
        print(f"fault campaign: {args.seeds} seeds x {args.cycles} cycles, {args.task} tasks, {args.faults} faults, "
              f"seeds from {args.first_seed}, {args.perception} perception, virtual time, one process")
        print(HEADER, flush=True)
        progress = show_row
    result = run(args.seeds, args.cycles, args.task, args.faults, args.first_seed, progress, args.perception)
    if args.json:
        print(json.dumps(result))
    else:
        show_totals(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
