"""Benchmark: a report's way from the task's end to the FC's OPC UA event, and its outbox commit, beside the floors.

Built from the real parts, in one process and one event loop (one monotonic clock, `time.perf_counter`):

    report(TaskReport) ─► ReportingWorkcell ─► CellStore.commit_report (worker thread, WAL fsync)
     t_end                  │                      └─ commit_ms: the call itself, timed in the thread
                            ├─ inner.report (a null workcell: nothing)
                            └─ on_committed = FcServer.notify_report ─► CellReportEventType event
                                 t_committed                               └─ asyncua client subscription: t_event

A fresh store (in a temporary directory under `--dir`), an `FcServer` on an ephemeral port over a fake cell
control, an asyncua client subscribed to `CellReportEventType` that acknowledges every report it gets
(AcknowledgeReports, as the simulated FC does). `--warmup` + `--reports` stow reports are made at `--rate-hz` on
average (a cell makes about one every 10 s, so the default paces them rather than flooding; the gaps vary by ±50 %),
or flat out with `--burst` (each after the last one's `report()` returned, as the chart makes them); the warm-up ones
are left out of the figures.
Per report: `report` = t_event - t_end (the whole way, commit included), `to_committed` = t_committed - t_end
(ReportingWorkcell: thread hops, commit), `to_event` = t_event - t_committed (the server and OPC UA), `commit` =
`CellStore.commit_report` (its transaction, and any wait for the store's lock held by the FC's side: the previous
report's mark_delivered and ack, each a write with its own fsync).

The client's publishing interval is `--publish-ms`; the default 0 lets asyncua publish an event at once, so the
figures are the cell's own; an FC that asks for an interval adds up to that much (the simulated FC asks for 50).

The floors, in the same run: paced, one sample of `fsync` and `read` in the middle of each measured report's gap (the
same disk and machine moments as the reports); flat out, up to 200 of each after the reports. `fsync` = `os.fsync`
after writing 100 bytes to a small file beside the store, in a worker thread (what any durable commit pays); `read` =
the same client reading one variable of the same server (Cellctl.StateCurrent: an OPC UA round trip). After the
reports, `event` = a bare asyncua server (no nodeset, no store) triggering an event to a subscription of the same
publishing interval (what an OPC UA event costs; `--no-event-floor` skips it: a second asyncua Server's init takes
seconds on a slow machine).

Aims (issue 12): report p99 < 50 ms, commit p50 < 2 ms; each is printed with whether it holds. Figures in ms.

Usage: python bench/fc.py [--reports N] [--warmup N] [--rate-hz R | --burst] [--publish-ms MS] [--dir PATH]
                          [--no-event-floor] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import structlog
from anyio.abc import TaskGroup
from asyncua import Client, Node, Server, ua

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout before bench/ (its statecharts.py)

from cellctl.fc.config import FcConfig
from cellctl.fc.control import CellCounters
from cellctl.fc.reporting import ReportingWorkcell
from cellctl.fc.server import FcServer, NodesetMissing
from cellctl.fc.store import CellStore, OutboxEntry
from statecharts.workcell import (
    Eligibility,
    Interlocks,
    ItemArrival,
    Motion,
    MotionResult,
    PickOrder,
    PickPlan,
    StowOption,
    StowPlan,
    TaskOutcome,
    TaskReport,
    Verification,
)

NAMESPACE = "urn:cellctl:fc"
AIMS = {"report_p99_ms": 50.0, "commit_ms": 2.0}  # issue 12's acceptance
WAIT_S = 10.0  # how long the last events may take to come in before they count as lost
FLOOR_SAMPLES = 200  # samples of a floor measured on its own (at most --reports): flat out, and the event floor


def summary_ms(samples: list[float]) -> dict[str, float]:
    """p50, p99, max in ms (as bench/outbox.py computes them)."""
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": round(p50 * 1e3, 4), "p99": round(p99 * 1e3, 4), "max": round(ordered[-1] * 1e3, 4)}


# --- the parts around the real ones -----------------------------------------------------------------------------


class TimedStore(CellStore):
    """The real store; each `commit_report` timed where it runs (the worker thread)."""

    commit_s: list[float]

    def commit_report(self, task_id: str, kind: str, payload: dict[str, Any]) -> OutboxEntry | None:
        start = time.perf_counter()
        try:
            return super().commit_report(task_id, kind, payload)
        finally:
            self.commit_s.append(time.perf_counter() - start)  # list.append: atomic under the GIL


class IdleControl:
    """A `CellControl` for a cell in Execute that takes no commands (the bench posts none)."""

    def state(self) -> str:
        return "execute"

    def allowed(self, event: str) -> bool:
        return False

    async def post(self, event: str) -> None:
        return None

    def counters(self) -> CellCounters:
        return CellCounters()


def _only_reports() -> RuntimeError:
    return RuntimeError("bench/fc.py's NullWorkcell takes reports only: no motion or perception call is benched")


class NullWorkcell:
    """The port under ReportingWorkcell: `report` does nothing; the bench calls nothing else, so the motion and
    perception calls refuse by name (a bench that reached one would be measuring something else)."""

    async def report(self, report: TaskReport) -> None:
        return None

    async def next_item(self, timeout_s: float) -> ItemArrival | None:
        return None

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        return None

    async def move(self, motion: Motion) -> MotionResult:
        raise _only_reports()

    async def set_hook(self, down: bool, timeout_s: float) -> MotionResult:
        raise _only_reports()

    async def plan_stow(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        raise _only_reports()

    async def verify_stow(self, item: ItemArrival, option: StowOption) -> Verification:
        raise _only_reports()

    async def check_pick(self, order: PickOrder) -> Eligibility:
        raise _only_reports()

    async def plan_pick(self, order: PickOrder) -> PickPlan:
        raise _only_reports()

    async def halt(self) -> None:
        return None

    async def interlocks(self) -> AsyncIterator[Interlocks]:
        yield Interlocks(ok=True)


class Arrivals:
    """asyncua's subscription handler: when each task id's event came (the first time), and what to acknowledge."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.duplicates = 0  # events for a task id already seen (redeliveries)
        self.send_ack, self.acks = anyio.create_memory_object_stream[int](100_000)
        self.changed = anyio.Event()

    def event_notification(self, event: Any) -> None:
        now = time.perf_counter()
        task_id = str(event.TaskId)
        if task_id in self.at:
            self.duplicates += 1
            return
        self.at[task_id] = now
        report_id = getattr(event, "ReportId", None)  # the bare floor's events have none: nothing to acknowledge
        if report_id is not None:
            self.send_ack.send_nowait(int(report_id))
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_for(self, task_ids: list[str], timeout_s: float) -> None:
        with anyio.move_on_after(timeout_s):
            while any(t not in self.at for t in task_ids):
                await self.changed.wait()


def stow_report(task_id: str, n: int) -> TaskReport:
    now = time.time()
    return TaskReport(task_id=task_id, task="stow", outcome=TaskOutcome.DONE, item_id=f"item-{n:06d}", bin_id="A3",
                      attempts=1, started_s=now - 12.5, ended_s=now)


# --- the run ------------------------------------------------------------------------------------------------------


async def acknowledge(client: Client, arrivals: Arrivals) -> None:
    """The FC's side: acknowledge every report it recorded, as it comes (as cellctl.fc.simclient's SimFc does)."""
    idx = await client.get_namespace_index(NAMESPACE)
    cellctl = await client.nodes.objects.get_child(f"{idx}:Cellctl")
    ack = await cellctl.get_child(f"{idx}:AcknowledgeReports")
    async for report_id in arrivals.acks:
        await cellctl.call_method(ack.nodeid, ua.Variant([report_id], ua.VariantType.UInt64))


class Floors:
    """One sample of each bare floor at a time: `os.fsync` of a small file beside the store, and an OPC UA read of
    one variable of the FC server by the same client."""

    def __init__(self, probe: BinaryIO, node: Node) -> None:
        self.probe, self.node = probe, node
        self.fsync_s: list[float] = []
        self.read_s: list[float] = []

    def _fsync(self) -> float:
        self.probe.write(b"x" * 100)
        self.probe.flush()
        start = time.perf_counter()
        os.fsync(self.probe.fileno())
        return time.perf_counter() - start

    async def sample(self) -> None:
        self.fsync_s.append(await anyio.to_thread.run_sync(self._fsync))  # in a worker thread, as the commit runs
        start = time.perf_counter()
        await self.node.read_value()
        self.read_s.append(time.perf_counter() - start)


async def make_reports(port: ReportingWorkcell, total: int, warmup: int, period_s: float, floors: Floors,
                       ) -> tuple[list[str], dict[str, float]]:
    """`total` reports, one every `period_s` on average (0: flat out), each awaited as the chart awaits it.

    The gaps are drawn from 0.5..1.5 periods, so the reports do not keep step with the publishing loop (at 20 Hz and
    a 50 ms publishing interval they would all wait the same part of it). Paced, each measured report's gap has one
    floor sample at its middle: the floors see the disk and the machine as the reports do."""
    ended: dict[str, float] = {}
    ids: list[str] = []
    due = time.perf_counter()
    for n in range(total):
        if period_s > 0:
            await anyio.sleep(max(0.0, due - time.perf_counter()))
            due += period_s * random.uniform(0.5, 1.5)
        task_id = f"stow-bench-{n:06d}"
        report = stow_report(task_id, n)
        ids.append(task_id)
        ended[task_id] = time.perf_counter()  # the task's end: the chart hands its report to the port
        await port.report(report)
        if period_s > 0 and n >= warmup:
            await anyio.sleep(max(0.0, (ended[task_id] + due) / 2 - time.perf_counter()))
            await floors.sample()
    return ids, ended


async def event_floor(publish_ms: float, samples: int) -> list[float]:
    """A bare asyncua server's event to a subscription in the same loop: trigger -> the handler."""
    server = Server()
    await server.init()
    server.set_endpoint("opc.tcp://127.0.0.1:0/bench")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:cellctl:bench")
    etype = await server.create_custom_event_type(idx, "BareEventType", ua.ObjectIds.BaseEventType,
                                                  [("TaskId", ua.VariantType.String)])
    generator = await server.get_event_generator(etype, ua.ObjectIds.Server)
    await server.start()
    try:
        assert server.bserver is not None
        arrivals = Arrivals()
        async with Client(f"opc.tcp://127.0.0.1:{server.bserver.port}/bench", timeout=5) as client:
            sub = await client.create_subscription(publish_ms, arrivals)
            await sub.subscribe_events(client.nodes.server, await client.nodes.base_event_type.get_child(
                f"{await client.get_namespace_index('urn:cellctl:bench')}:BareEventType"))
            times: list[float] = []
            for n in range(samples + 5):  # the first few warm the path up
                task_id = f"bare-{n:06d}"
                await anyio.sleep(random.uniform(0.0, publish_ms / 1e3))  # not in step with the publishing loop
                start = time.perf_counter()
                generator.event.TaskId = task_id
                await generator.trigger()
                await arrivals.wait_for([task_id], WAIT_S)
                if task_id in arrivals.at and n >= 5:
                    times.append(arrivals.at[task_id] - start)
    finally:
        clock = getattr(server.iserver, "time_task", None)  # stop() would wait out its 1 s sleep (as FcServer does)
        if isinstance(clock, asyncio.Task):
            clock.cancel()
            server.iserver.time_task = None
        await server.stop()
    return times


async def bench(reports: int, warmup: int, period_s: float, publish_ms: float, directory: Path,
                event_floor_too: bool = True) -> dict[str, Any]:
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-fc-") as tmp:
        store = TimedStore.open(Path(tmp) / "cell.sqlite")
        assert isinstance(store, TimedStore)  # CellStore.open builds its own class
        store.commit_s = []
        try:
            with (Path(tmp) / "fsync-probe").open("wb") as probe:
                async with anyio.create_task_group() as tg:
                    result = await _bench(tg, store, probe, reports, warmup, period_s, publish_ms)
                    tg.cancel_scope.cancel()
            samples = min(reports, FLOOR_SAMPLES)
            result["event_floor_ms"] = summary_ms(await event_floor(publish_ms, samples)) if event_floor_too else None
        finally:
            store.close()
    result["dir"] = str(directory)
    return result


async def _bench(tg: TaskGroup, store: TimedStore, probe: BinaryIO, reports: int, warmup: int, period_s: float,
                 publish_ms: float) -> dict[str, Any]:
    server = FcServer(FcConfig(port=0, store=store.path), IdleControl(), store)
    committed: dict[str, float] = {}

    def on_committed(entry: OutboxEntry) -> None:
        committed[entry.task_id] = time.perf_counter()
        server.notify_report(entry)

    port = ReportingWorkcell(NullWorkcell(), store, current_task=lambda: "", on_committed=on_committed)
    url = await tg.start(server.run)
    arrivals = Arrivals()
    async with Client(url, timeout=10) as client:
        idx = await client.get_namespace_index(NAMESPACE)
        sub = await client.create_subscription(publish_ms, arrivals)
        await sub.subscribe_events(client.nodes.server,
                                   await client.nodes.base_event_type.get_child(f"{idx}:CellReportEventType"))
        floors = Floors(probe, client.get_node(f"ns={idx};s=Cellctl.StateCurrent"))
        async with anyio.create_task_group() as acks:
            acks.start_soon(acknowledge, client, arrivals)
            started = time.perf_counter()
            ids, ended = await make_reports(port, warmup + reports, warmup, period_s, floors)
            await arrivals.wait_for(ids, WAIT_S)
            wall_s = time.perf_counter() - started
            acks.cancel_scope.cancel()
        while len(floors.read_s) < min(reports, FLOOR_SAMPLES):  # flat out: the floors after the reports
            await floors.sample()
    measured = ids[warmup:]
    commit = store.commit_s[warmup:]
    whole = [arrivals.at[t] - ended[t] for t in measured if t in arrivals.at]
    to_committed = [committed[t] - ended[t] for t in measured if t in committed]
    to_event = [arrivals.at[t] - committed[t] for t in measured if t in arrivals.at and t in committed]
    lost = sum(t not in arrivals.at for t in ids)
    if not whole:
        raise RuntimeError(f"no report event reached the client ({lost} lost)")
    return {
        "reports": reports, "warmup": warmup, "rate_hz": None if period_s == 0 else round(1 / period_s, 3),
        "burst": period_s == 0, "publish_ms": publish_ms, "wall_s": round(wall_s, 3),
        "report_ms": summary_ms(whole), "commit_summary_ms": summary_ms(commit),
        "to_committed_ms": summary_ms(to_committed), "to_event_ms": summary_ms(to_event),
        "fsync_ms": summary_ms(floors.fsync_s), "read_floor_ms": summary_ms(floors.read_s),
        "floor_samples": len(floors.read_s), "lost": lost, "duplicates": arrivals.duplicates,
        "store_duplicates": store.duplicates,
    }


def flatten(result: dict[str, Any]) -> dict[str, Any]:
    """The headline keys (report_p50_ms, ..., commit_ms = the commit's p50) beside the summaries, and the aims."""
    report, commit, event = result["report_ms"], result["commit_summary_ms"], result["event_floor_ms"]
    out = {"report_p50_ms": report["p50"], "report_p99_ms": report["p99"], "report_max_ms": report["max"],
           "commit_ms": commit["p50"], "commit_p99_ms": commit["p99"], "commit_max_ms": commit["max"],
           "fsync_p50_ms": result["fsync_ms"]["p50"], "fsync_p99_ms": result["fsync_ms"]["p99"],
           "read_floor_p50_ms": result["read_floor_ms"]["p50"], "read_floor_p99_ms": result["read_floor_ms"]["p99"],
           "event_floor_p50_ms": event["p50"] if event else None, "event_floor_p99_ms": event["p99"] if event else None,
           **result}
    out["aims"] = {key: {"aim_ms": aim, "value_ms": out[key], "holds": out[key] < aim} for key, aim in AIMS.items()}
    return out


def table(r: dict[str, Any]) -> str:
    pace = "flat out (--burst)" if r["burst"] else f"{r['rate_hz']:g} Hz"
    lines = [f"FC reports: {r['reports']} measured (+{r['warmup']} warm-up), {pace}, publishing interval "
             f"{r['publish_ms']:g} ms, store in {r['dir']}; {r['lost']} lost, {r['duplicates']} events repeated",
             f"  {'':<34}{'p50':>9}{'p99':>9}{'max':>9}  ms"]

    def row(name: str, figures: dict[str, float] | None) -> None:
        if figures is None:
            lines.append(f"  {name:<34}{'(not measured)':>27}")
            return
        lines.append(f"  {name:<34}{figures['p50']:>9.3f}{figures['p99']:>9.3f}{figures['max']:>9.3f}")

    row("report: task end -> FC event", r["report_ms"])
    row("  task end -> committed", r["to_committed_ms"])
    row("  committed -> FC event", r["to_event_ms"])
    row("  floor: bare asyncua event", r["event_floor_ms"])
    row("  floor: OPC UA read round trip", r["read_floor_ms"])
    row("commit: CellStore.commit_report", r["commit_summary_ms"])
    row("  floor: os.fsync (same disk)", r["fsync_ms"])
    for key, aim in r["aims"].items():
        verdict = "holds" if aim["holds"] else "MISSED"
        lines.append(f"  aim {key} < {aim['aim_ms']:g} ms: {aim['value_ms']:.3f} ms, {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=500, help="reports measured")
    parser.add_argument("--warmup", type=int, default=20, help="reports made first and left out")
    parser.add_argument("--rate-hz", type=float, default=20.0, help="reports per second")
    parser.add_argument("--burst", action="store_true", help="reports flat out, each after the last returned")
    parser.add_argument("--publish-ms", type=float, default=0.0,
                        help="the client subscription's publishing interval (0: asyncua publishes at once)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the store lives (the disk measured)")
    parser.add_argument("--no-event-floor", action="store_true", help="skip the bare asyncua event floor")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.reports < 1 or args.warmup < 0:
        parser.error("--reports must be >= 1 and --warmup >= 0")
    if not (math.isfinite(args.rate_hz) and args.rate_hz > 0) or not (
            math.isfinite(args.publish_ms) and args.publish_ms >= 0):
        parser.error("--rate-hz must be > 0 and --publish-ms >= 0")
    # Errors only, and to stderr (stdout is the result): the server's INFO lines per ack are not what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    logging.getLogger("asyncua").setLevel(logging.ERROR)  # its per-connection INFO/WARNING chatter
    period_s = 0.0 if args.burst else 1.0 / args.rate_hz
    try:
        result = anyio.run(bench, args.reports, args.warmup, period_s, args.publish_ms, args.dir,
                           not args.no_event_floor)
    except NodesetMissing as exc:
        print(f"bench/fc.py: {exc}", file=sys.stderr)
        return 2
    result = flatten(result)
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
