"""Benchmark: what committing a report to the durable outbox costs, next to a bare fsync on the same disk.

A fresh store (`cellctl.fc.store.CellStore`) in a temporary directory under `--dir`: `--reports` stow reports
(a TaskReport-sized payload), each after its task's `begin_task`, are committed one by one; every `--ack-every`
reports the FC acknowledges them, as it would. Timed per call (`time.perf_counter`): `commit_report` (one
transaction, one WAL fsync), `ack` of a batch; and, in the same run and directory, `os.fsync` after writing
100 bytes to a small file (the floor any durable commit pays). Figures in milliseconds: p50, p99, max.

Usage: python bench/outbox.py [--reports N] [--ack-every N] [--dir PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cellctl.fc.store import CellStore


def summary_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered) * 1e3, 4), "p99": round(p99 * 1e3, 4),
            "max": round(ordered[-1] * 1e3, 4)}


def payload(n: int) -> dict[str, object]:
    return {"task": "stow", "outcome": "done", "item_id": f"item-{n:06d}", "bin_id": "A3", "pod": "P1",
            "started_s": 1000.0 + n, "ended_s": 1012.5 + n, "attempts": 1, "regrasps": 0,
            "detail": {"pose_mm": [120.5, 44.0, 310.25], "force_n": 8.5, "note": "placed against the left wall"}}


def run(reports: int, ack_every: int, directory: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-outbox-") as tmp:
        store = CellStore.open(Path(tmp) / "cell.db")
        commits: list[float] = []
        acks: list[float] = []
        unacked: list[int] = []
        try:
            for n in range(reports):
                task_id = store.new_task_id("stow")
                store.begin_task(task_id, "stow", f"item-{n:06d}", "A3")
                body = payload(n)
                start = time.perf_counter()
                entry = store.commit_report(task_id, "report", body)
                commits.append(time.perf_counter() - start)
                assert entry is not None
                unacked.append(entry.report_id)
                if len(unacked) >= ack_every:
                    start = time.perf_counter()
                    store.ack(unacked)
                    acks.append(time.perf_counter() - start)
                    unacked.clear()
            db_bytes = sum(p.stat().st_size for p in Path(tmp).iterdir())
        finally:
            store.close()
        fsyncs: list[float] = []
        probe = Path(tmp) / "fsync-probe"
        with probe.open("wb") as f:
            for _ in range(reports):
                f.write(b"x" * 100)
                f.flush()
                start = time.perf_counter()
                os.fsync(f.fileno())
                fsyncs.append(time.perf_counter() - start)
    return {"reports": reports, "ack_every": ack_every, "commit_ms": summary_ms(commits),
            "ack_ms": summary_ms(acks) if acks else None, "fsync_ms": summary_ms(fsyncs),
            "db_bytes": db_bytes, "dir": str(directory)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--ack-every", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the store goes (the disk measured)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.reports < 1 or args.ack_every < 1:
        parser.error("--reports and --ack-every must be >= 1")
    result = run(args.reports, args.ack_every, args.dir)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"outbox on {result['dir']}: {result['reports']} reports, acked every {result['ack_every']}")
    for name in ("commit_ms", "ack_ms", "fsync_ms"):
        figures = result[name]
        if isinstance(figures, dict):
            print(f"  {name[:-3]:>7}: p50 {figures['p50']:.3f} ms  p99 {figures['p99']:.3f} ms  "
                  f"max {figures['max']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
