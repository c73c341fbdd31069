"""Benchmark: our statechart engine side by side with sismic, transitions and python-statemachine.

The same chart runs in every library (see `statechart_peers`)::

    cell (root), initial idle
      idle --start--> running
      running [parallel] --stop--> idle
        arm:  approach --touch--> contact --lift--> retract --go--> approach
        band: closed --open_band--> open --close_band--> closed

Every state except the root counts its entries; each library's counts and final configuration are
checked against a reference simulation. Ours is driven through the async API the cell's charts use at
run time (`running(chart)`, `runner.post`, `runner.wait_idle`) on a plain asyncio loop.

Throughput: the whole event sequence, timed from the first post (or send) until the last event was
processed; best of `--repeat` runs, the libraries taking turns so that noise hits all alike.
Latency: one event at a time, from posting it to the entry action of its target state.

Usage: python bench/statecharts.py [--events N] [--latency-samples N] [--repeat K] [--json]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path and this file would shadow the `statecharts`
# package: drop it while importing the engine, then add it back (last) for `statechart_peers`.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import gc
import importlib.metadata
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from statecharts.engine import (
    ActionContext,
    Chart,
    Event,
    Parallel,
    RealClock,
    State,
    on,
    running,
)

sys.path.append(str(_HERE))

from statechart_peers import (
    PEERS,
    TARGET,
    PeerResult,
    _percentile,
    _Recorder,
    event_sequence,
    expected_counts,
    expected_final,
)

OURS = "cellctl"
ROOT = "cell"
DEFAULT_EVENTS = 35_001  # 1 start + 5000 whole cycles: ends in `running`
DEFAULT_LATENCY_SAMPLES = 5_000
DEFAULT_REPEAT = 3

Action = Callable[[ActionContext, Event], None]


@dataclass
class Result:
    """One library's figures: best throughput over the repeats, latency from one run."""

    name: str
    version: str
    events: int
    seconds: float  # best (least) wall time of the throughput phase
    latencies_s: list[float]

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    def latency_ms(self, q: float) -> float | None:
        return round(_percentile(self.latencies_s, q) * 1e3, 6) if self.latencies_s else None  # ns resolution


# --- our engine -------------------------------------------------------------------------------------


def _entry(rec: _Recorder, name: str) -> Action:
    """An entry action counting entries of `name` (and stamping the latency probe)."""
    enter = rec.enter

    def action(ctx: ActionContext, event: Event) -> None:
        enter(name)

    action.__name__ = f"enter_{name}"
    return action


def build_chart(rec: _Recorder) -> Chart:
    """The benchmark chart in our engine; entry actions report to `rec`."""

    def st(name: str, *children: State, **kwargs: Any) -> State:
        return State(name, *children, on_entry=_entry(rec, name), **kwargs)

    arm = st(
        "arm",
        st("approach", transitions=[on("touch", "contact")]),
        st("contact", transitions=[on("lift", "retract")]),
        st("retract", transitions=[on("go", "approach")]),
        initial="approach",
    )
    band = st(
        "band",
        st("closed", transitions=[on("open_band", "open")]),
        st("open", transitions=[on("close_band", "closed")]),
        initial="closed",
    )
    run = Parallel("running", arm, band, transitions=[on("stop", "idle")], on_entry=_entry(rec, "running"))
    idle = st("idle", transitions=[on("start", "running")])
    return Chart("bench_cell", State(ROOT, idle, run, initial="idle"))


def _check(phase: str, rec: _Recorder, configuration: frozenset[str], n: int) -> None:
    """Raise unless entry counts and final configuration match the reference simulation."""
    want_counts, want_final = expected_counts(n), expected_final(n)
    if rec.counts != want_counts:
        raise AssertionError(f"{OURS} ({phase}, {n} events): entry counts {rec.counts} != expected {want_counts}")
    config = configuration - {ROOT}
    if config != want_final:
        raise AssertionError(
            f"{OURS} ({phase}, {n} events): final configuration {sorted(config)} != expected {sorted(want_final)}"
        )


async def _ours_throughput(n_events: int) -> float:
    rec = _Recorder()
    chart = build_chart(rec)
    events = event_sequence(n_events)
    async with running(chart) as runner:
        post = runner.post
        gc.collect()
        t0 = perf_counter()
        for event in events:
            post(event)  # non-blocking; the chart task processes in posting order
        await runner.wait_idle()
        seconds = perf_counter() - t0
        _check("throughput", rec, runner.configuration, n_events)
    return seconds


async def _ours_latency(samples: int) -> list[float]:
    rec = _Recorder()
    chart = build_chart(rec)
    latencies: list[float] = []
    async with running(chart) as runner:
        gc.collect()
        for event in event_sequence(samples):
            rec.target = TARGET[event]
            rec.stamp = 0.0
            t0 = perf_counter()
            runner.post(event)
            await runner.wait_idle()
            if rec.stamp < t0:
                raise AssertionError(f"{OURS}: entry action of {rec.target!r} not run for {event!r}")
            latencies.append(rec.stamp - t0)
        rec.target = None
        _check("latency", rec, runner.configuration, samples)
    return latencies


def run_ours(n_events: int, latency_samples: int) -> PeerResult:
    """Same shape as the peers' runners: one throughput run, then `latency_samples` probed events."""
    clock = RealClock()
    seconds = clock.run(_ours_throughput, n_events)
    latencies = clock.run(_ours_latency, latency_samples) if latency_samples > 0 else []
    return PeerResult(
        name=OURS,
        version=_version(OURS),
        events=n_events,
        seconds=seconds,
        latencies_s=latencies,
        entry_counts=expected_counts(n_events),  # checked equal in _check
        final_configuration=expected_final(n_events),
    )


# --- harness ----------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def measure(n_events: int, latency_samples: int, repeat: int) -> tuple[Result, dict[str, Result], dict[str, str]]:
    """Ours and every installed peer; returns (ours, peers by name, skipped peers -> reason)."""
    runners: dict[str, Callable[[int, int], PeerResult]] = {OURS: run_ours, **PEERS}
    results: dict[str, Result] = {}
    skipped: dict[str, str] = {}
    for round_ in range(repeat):
        # Take turns (rotating who goes first) so drift and noise affect every library alike;
        # latency is sampled in the first round only.
        names = [n for n in runners if n not in skipped]
        k = round_ % len(names)
        for name in names[k:] + names[:k]:
            try:
                res = runners[name](n_events, latency_samples if round_ == 0 else 0)
            except ImportError as exc:
                skipped[name] = str(exc)
                print(f"skipping {name}: {exc}", file=sys.stderr)
                continue
            best = results.get(name)
            if best is None:
                results[name] = Result(res.name, res.version, res.events, res.seconds, res.latencies_s)
            else:
                best.seconds = min(best.seconds, res.seconds)
    ours = results.pop(OURS)
    peers = {name: results[name] for name in PEERS if name in results}  # keep PEERS' order
    return ours, peers, skipped


def report(ours: Result, peers: dict[str, Result], skipped: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """The JSON summary (also the source of the table)."""
    fastest = max(peers.values(), key=lambda r: r.events_per_s, default=None)
    return {
        "events": args.events,
        "latency_samples": args.latency_samples,
        "repeat": args.repeat,
        "events_per_s": round(ours.events_per_s, 1),
        "latency_p50_ms": ours.latency_ms(0.50),
        "latency_p99_ms": ours.latency_ms(0.99),
        "peers": {name: round(r.events_per_s, 1) for name, r in peers.items()},
        "peer_latency_ms": {name: {"p50": r.latency_ms(0.50), "p99": r.latency_ms(0.99)} for name, r in peers.items()},
        "fastest_peer": fastest.name if fastest else None,
        "ratio_vs_fastest_peer": round(ours.events_per_s / fastest.events_per_s, 3) if fastest else None,
        "versions": {OURS: ours.version, **{name: r.version for name, r in peers.items()}},
        "skipped": skipped,
        "python": platform.python_version(),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_table(ours: Result, peers: dict[str, Result], summary: dict[str, Any]) -> None:
    print(
        f"statechart benchmark: {summary['events']} events (best of {summary['repeat']}), "
        f"{summary['latency_samples']} latency samples, Python {summary['python']}"
    )
    header = f"{'library':<22} {'version':<9} {'events/s':>11} {'p50 ms':>9} {'p99 ms':>9} {'ours is':>9}"
    print(header)
    print("-" * len(header))
    for r in (ours, *peers.values()):
        label = f"{r.name} (ours)" if r is ours else r.name
        speedup = f"{ours.events_per_s / r.events_per_s:.2f}x" if r is not ours else ""
        print(
            f"{label:<22} {r.version:<9} {r.events_per_s:>11,.0f} "
            f"{_ms(r.latency_ms(0.50)):>9} {_ms(r.latency_ms(0.99)):>9} {speedup:>9}"
        )
    for name, reason in summary["skipped"].items():
        print(f"{name:<22} skipped: {reason}")
    ratio = summary["ratio_vs_fastest_peer"]
    if ratio is None:
        print("ratio vs fastest peer: n/a (no peer installed; pip install -e '.[bench]')")
    else:
        print(f"ratio vs fastest peer ({summary['fastest_peer']}): {ratio:.2f}x events/s")
    print("latency: post/send of one event -> entry action of its target state (ours via the async runner)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=_positive, default=DEFAULT_EVENTS, help="events per throughput run")
    parser.add_argument(
        "--latency-samples", type=_positive, default=DEFAULT_LATENCY_SAMPLES, help="events timed one at a time"
    )
    parser.add_argument("--repeat", type=_positive, default=DEFAULT_REPEAT, help="throughput runs; the best counts")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    ours, peers, skipped = measure(args.events, args.latency_samples, args.repeat)
    summary = report(ours, peers, skipped, args)
    if args.json:
        print(json.dumps(summary))
    else:
        print_table(ours, peers, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
