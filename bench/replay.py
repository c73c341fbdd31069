"""Benchmark: replay speed and event-log write cost for a shift with the F/T sensor at 1 kHz.

A `typical`-fault mixed shift runs in simulation (`cellctl sim`, virtual time) for at least
`--minutes` of virtual time, writing its event log. In simulation the F/T sensor streams (fz only)
only while a force-guarded motion runs, so the log the real cell would write is built from it: the
shift's records (its F/T batches left out) re-written into a fresh log, interleaved in time order with
a continuous 1 kHz six-axis F/T stream (synthetic: tool bias plus sensor noise) for the whole shift,
one record per 10 ms as `LogRecorder.record_samples` writes it. The log is flushed once per shift
second, as the log's 1 s wall-clock flush does on a cell running in real time.

- log write cost: CPU seconds (`time.process_time`, every thread of the process: encoding, zstd,
  file writes) of the write loop and the close, the samples generated beforehand; as a fraction of
  one core over the shift's duration.
- replay speed: `cellctl replay` on that log, end to end (read the file, decode every record, replay
  the charts on virtual time, compare): virtual seconds over wall seconds.
The simulation's own log (no continuous F/T) is measured the same way and shown beside it.

Usage: python bench/replay.py [--minutes M] [--seed S] [--repeat N] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from cellctl.commands.replay import Entry, replay
from cellctl.commands.sim import SimOptions, run_sim
from cellctl.eventlog import FT_FIELDS, EventLog, SampleBatcher, read_log
from cellctl.eventlog.batch import BATCH_SCHEMA_NAME
from cellctl.eventlog.recorder import SAMPLE_TOPICS, SCHEMAS, LogRecorder

FT_HZ = 1000.0
FT_BATCH = 10  # samples per record: 10 ms at 1 kHz, as the cell batches them
FT_TOPIC = "ft.wrench"
SECONDS_PER_CYCLE = 11.5  # a little under the typical mixed cycle, so the first run usually suffices
AIM_SPEEDUP = 50.0
AIM_CPU_FRACTION = 0.10
FLUSH_EVERY_S = 1.0  # EventLog's default flush_s: on a real-time cell, one flush per shift second


class SixAxisRecorder(LogRecorder):
    """`LogRecorder` with `ft.wrench` declared with the real sensor's six axes (the simulation logs fz only)."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        for topic, schema in SCHEMAS.items():
            log.add_channel(topic, f"cellctl.{topic}", schema)
        for topic, fields in {**SAMPLE_TOPICS, FT_TOPIC: FT_FIELDS}.items():
            log.add_channel(topic, BATCH_SCHEMA_NAME, SampleBatcher(topic, fields).json_schema())


def simulate_shift(shift_s: float, seed: int, path: Path) -> dict[str, Any]:
    """A mixed shift under `typical` faults of at least `shift_s` virtual seconds, logged to `path`.

    A run ends after a cycle count, not a time: when a run falls short, run again with more cycles."""
    cycles = max(1, math.ceil(shift_s / SECONDS_PER_CYCLE))
    while True:
        # The oracle's perception: this measures the log and replay, not the models (the log is the same shape).
        summary = run_sim(SimOptions("mixed", cycles, seed, "typical", log=path, perception="oracle"))
        if summary["virtual_s"] >= shift_s:
            return summary
        per_cycle = summary["virtual_s"] / max(summary["cycles"], 1)
        cycles = max(cycles + 1, math.ceil(shift_s / max(per_cycle, 1e-3) * 1.02))


def ft_stream(t_start: float, t_end: float, seed: int) -> list[tuple[float, dict[str, np.ndarray]]]:
    """Continuous six-axis F/T over [t_start, t_end) as 10 ms batches: (t0, columns) ready for `record_samples`."""
    n_batches = max(1, math.ceil((t_end - t_start) * FT_HZ / FT_BATCH))
    n = n_batches * FT_BATCH
    rng = np.random.default_rng(seed)
    bias = np.array([1.5, -0.8, -12.0, 0.05, -0.03, 0.01])  # the tool's weight and offsets, N and Nm
    noise = np.array([0.3, 0.3, 0.3, 0.02, 0.02, 0.02])  # as the simulated sensor's force noise (0.3 N)
    wrench = bias + rng.normal(0.0, 1.0, (n, 6)) * noise
    columns = [np.ascontiguousarray(wrench[:, i]) for i in range(6)]
    offsets = np.arange(FT_BATCH) / FT_HZ
    batches = []
    for b in range(n_batches):
        s = slice(b * FT_BATCH, (b + 1) * FT_BATCH)
        batch: dict[str, np.ndarray] = {"t": offsets}
        batch.update(zip(FT_FIELDS, (c[s] for c in columns), strict=True))
        batches.append((t_start + b * FT_BATCH / FT_HZ, batch))
    return batches


Event = tuple[float, str, Any, bool]  # t_s, topic, payload or columns, is a sample batch


def as_written(t_s: float, topic: str, payload: dict[str, Any]) -> Event:
    """A read-back record as the recorder was given it: a sample batch back to numpy columns."""
    if topic not in SAMPLE_TOPICS:
        return (t_s, topic, payload, False)
    columns = {"t": np.asarray(payload["dt_ns"], dtype=np.float64) * 1e-9}
    columns.update((name, np.asarray(payload[name], dtype=np.float64)) for name in SAMPLE_TOPICS[topic])
    return (payload["t0"], topic, columns, True)


def write_log(path: Path, events: Sequence[Event], six_axis: bool, t_start: float) -> dict[str, float]:
    """Write `events` (time-ordered) to a fresh log; CPU and wall time of the writing and the close."""
    log = EventLog.open(path, overwrite=True)
    recorder = SixAxisRecorder(log) if six_axis else LogRecorder(log)
    next_flush = t_start + FLUSH_EVERY_S
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t, topic, payload, samples in events:
        if t >= next_flush:
            log.flush()
            next_flush = t_start + FLUSH_EVERY_S * (math.floor((t - t_start) / FLUSH_EVERY_S) + 1)
        if samples:
            recorder.record_samples(topic, t, FT_HZ, payload)
        else:
            recorder.record(topic, t, payload)
    log.close()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"records": log.records_written, "bytes": log.bytes_written, "cpu_s": cpu, "wall_s": wall}


def replay_file(path: Path) -> dict[str, Any]:
    """`cellctl replay` on the file: read and decode it, replay; wall time of both."""
    t0 = time.perf_counter()
    entries = [Entry(r.t_s, r.topic, r.payload) for r in read_log(path)]
    read_s = time.perf_counter() - t0
    summary = replay(entries)
    summary["read_s"] = read_s
    summary["total_wall_s"] = time.perf_counter() - t0
    return summary


def median_of(runs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The first run's figures with every timing (`*_s`) replaced by its median over the runs."""
    runs = list(runs)
    out = dict(runs[0])
    for key, value in out.items():
        if key.endswith("_s") and isinstance(value, int | float):
            out[key] = float(np.median([r[key] for r in runs]))
    if "diverged" in out:
        out["diverged"] = any(r["diverged"] for r in runs)
    return out


def figures(written: dict[str, float], replayed: dict[str, Any], shift_s: float) -> dict[str, Any]:
    wall = replayed["total_wall_s"]
    return {
        "records": int(written["records"]),
        "bytes": int(written["bytes"]),
        "records_per_s": round(written["records"] / shift_s, 2),
        "bytes_per_record": round(written["bytes"] / written["records"], 1),
        "write_cpu_s": round(written["cpu_s"], 3),
        "write_wall_s": round(written["wall_s"], 3),
        "cpu_fraction": round(written["cpu_s"] / shift_s, 5),
        "bytes_per_s": round(written["bytes"] / shift_s, 1),
        "replay_read_s": round(replayed["read_s"], 3),
        "replay_charts_s": round(replayed["wall_s"], 3),
        "replay_wall_s": round(wall, 3),
        "replay_speedup": round(shift_s / wall, 1),
        "replay_records_per_s": round(replayed["records"] / wall, 1),
        "replay_transitions": replayed["transitions"],
        "diverged": replayed["diverged"],
        "first_divergence": replayed["first_divergence"],
    }


def run(minutes: float, seed: int, workdir: Path, repeat: int = 3) -> dict[str, Any]:
    sim_path, ft_path, sim_copy = workdir / "shift-sim.mcap", workdir / "shift-ft1khz.mcap", workdir / "rewrite.mcap"
    sim = simulate_shift(minutes * 60.0, seed, sim_path)
    recorded = [(r.t_s, r.topic, r.payload) for r in read_log(sim_path)]
    t_start = min((t for t, _, _ in recorded), default=0.0)
    t_end = max(float(sim["virtual_s"]), max((t for t, _, _ in recorded), default=0.0))
    shift_s = t_end - t_start

    # The simulation's log as it is (fz only while guarded), and the real cell's (continuous six-axis F/T).
    # Recorded sample batches go back through `record_samples` (numpy columns), as the cell writes them.
    sim_events: list[Event] = [as_written(t, topic, p) for t, topic, p in recorded]
    ft_events = [e for e in sim_events if e[1] != FT_TOPIC]
    ft_events += [(t0, FT_TOPIC, cols, True) for t0, cols in ft_stream(t_start, t_end, seed)]
    ft_events.sort(key=lambda e: e[0])  # stable: recorded order kept among equal times
    sim_written = median_of(write_log(sim_copy, sim_events, False, t_start) for _ in range(repeat))
    ft_written = median_of(write_log(ft_path, ft_events, True, t_start) for _ in range(repeat))
    sim_copy.unlink(missing_ok=True)
    sim_written["bytes"] = sim_path.stat().st_size  # figures of the file the simulation wrote
    sim_fig = figures(sim_written, median_of(replay_file(sim_path) for _ in range(repeat)), shift_s)
    ft_fig = figures(ft_written, median_of(replay_file(ft_path) for _ in range(repeat)), shift_s)
    return {
        "shift_s": round(shift_s, 3),
        "cycles": sim["cycles"],
        "seed": seed,
        "faults": "typical",
        "task": "mixed",
        "outcomes": sim["outcomes"],
        "sim_wall_s": sim["wall_s"],
        "ft_rate_hz": FT_HZ,
        "ft_batch_s": FT_BATCH / FT_HZ,
        "repeat": repeat,
        # headline: the log with continuous 1 kHz six-axis F/T
        "log_records": ft_fig["records"],
        "log_bytes": ft_fig["bytes"],
        "log_records_per_s": ft_fig["records_per_s"],
        "log_bytes_per_record": ft_fig["bytes_per_record"],
        "log_cpu_fraction": ft_fig["cpu_fraction"],
        "replay_wall_s": ft_fig["replay_wall_s"],
        "replay_speedup": ft_fig["replay_speedup"],
        "replay_records_per_s": ft_fig["replay_records_per_s"],
        "diverged": ft_fig["diverged"] or sim_fig["diverged"],
        "aim_replay_speedup": AIM_SPEEDUP,
        "aim_log_cpu_fraction": AIM_CPU_FRACTION,
        "ft_1khz": ft_fig,
        "sim_log": sim_fig,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="virtual length of the shift (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated shift (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="writes and replays of each log; medians (default 3)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the log files in DIR (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not (args.minutes > 0 and math.isfinite(args.minutes)):
        parser.error("--minutes must be > 0")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        workdir = args.keep
    else:
        workdir = Path(tempfile.mkdtemp(prefix="cellctl-bench-replay-"))
    try:
        result = run(args.minutes, args.seed, workdir, args.repeat)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.keep is not None:
        result["logs"] = str(workdir)
    if args.json:
        print(json.dumps(result))
    else:
        show(result)
    return 1 if result["diverged"] else 0


def show(r: dict[str, Any]) -> None:
    print(f"shift: mixed tasks, typical faults, seed {r['seed']}: {r['shift_s']:.1f} s virtual, {r['cycles']} cycles "
          f"({r['outcomes']['done']} done), simulated in {r['sim_wall_s']:.1f} s")
    print(f"{'log':<34}{'records':>9}{'rec/s':>8}{'MB':>7}{'B/rec':>7}{'write CPU s':>12}{'CPU/core':>10}"
          f"{'replay s':>10}{'speedup':>9}{'rec/s':>10}")
    rows = (("sim (fz only while guarded)", r["sim_log"]), ("real cell: + 6-axis F/T at 1 kHz", r["ft_1khz"]))
    for name, f in rows:
        print(f"{name:<34}{f['records']:>9}{f['records_per_s']:>8.1f}{f['bytes'] / 1e6:>7.2f}"
              f"{f['bytes_per_record']:>7.1f}{f['write_cpu_s']:>12.3f}{f['cpu_fraction']:>9.2%} "
              f"{f['replay_wall_s']:>10.3f}{f['replay_speedup']:>8.0f}x{f['replay_records_per_s']:>10.0f}")
    ft = r["ft_1khz"]
    ok = ft["replay_speedup"] >= AIM_SPEEDUP
    print(f"replay (read {ft['replay_read_s']:.2f} s + charts {ft['replay_charts_s']:.2f} s): "
          f"{ft['replay_speedup']:.0f}x real time, aim >= {AIM_SPEEDUP:.0f}x: {'met' if ok else 'MISSED'}")
    ok = r["log_cpu_fraction"] < AIM_CPU_FRACTION
    print(f"logging: {r['log_cpu_fraction']:.2%} of one core, {ft['bytes_per_s'] / 1e3:.1f} kB/s, "
          f"aim < {AIM_CPU_FRACTION:.0%}: {'met' if ok else 'MISSED'}")
    for name, f in rows:
        if f["diverged"]:
            print(f"DIVERGED ({name}): {json.dumps(f['first_divergence'])}")
    if "logs" in r:
        print(f"logs kept in {r['logs']}")


if __name__ == "__main__":
    sys.exit(main())
