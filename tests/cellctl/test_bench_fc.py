"""bench/fc.py: a small run gives one JSON object with the headline figures and the floors (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fc.py"
FIGURES = (
    "report_p50_ms", "report_p99_ms", "report_max_ms", "commit_ms", "commit_p99_ms", "commit_max_ms",
    "fsync_p50_ms", "fsync_p99_ms", "read_floor_p50_ms", "read_floor_p99_ms",
)
SUMMARIES = ("report_ms", "commit_summary_ms", "to_committed_ms", "to_event_ms", "read_floor_ms", "fsync_ms")


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_fc", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_a_small_run_prints_one_json_object_with_every_figure(tmp_path: Path) -> None:
    # A subprocess: the bench configures structlog and asyncua's logging for itself (stdout is its result).
    args = ["--reports", "30", "--warmup", "5", "--rate-hz", "100", "--no-event-floor", "--dir", str(tmp_path),
            "--json"]
    done = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120,
                          cwd=BENCH.parents[1], check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    result = json.loads(lines[0])
    for key in FIGURES:
        assert positive(result[key]), (key, result[key])
    for key in SUMMARIES:
        assert all(positive(result[key][q]) for q in ("p50", "p99", "max")), (key, result[key])
    assert result["event_floor_ms"] is None and result["event_floor_p50_ms"] is None  # --no-event-floor
    assert result["reports"] == 30 and result["warmup"] == 5 and result["rate_hz"] == 100.0
    assert result["floor_samples"] == 30  # paced: one floor sample in each measured report's gap
    assert result["lost"] == 0  # every report's event reached the client
    assert set(result["aims"]) == {"report_p99_ms", "commit_ms"}
    for aim in result["aims"].values():
        assert isinstance(aim["holds"], bool) and positive(aim["aim_ms"]) and positive(aim["value_ms"])
    assert not list(tmp_path.iterdir())  # the store's temporary directory is gone


def test_the_table_prints_each_aim_and_whether_it_holds() -> None:
    bench = load_bench()
    figures = {"p50": 1.0, "p99": 2.0, "max": 3.0}
    result = {name: figures for name in SUMMARIES} | {
        "report_ms": {"p50": 10.0, "p99": 60.0, "max": 80.0}, "event_floor_ms": None, "reports": 10, "warmup": 2,
        "rate_hz": 20.0, "burst": False, "publish_ms": 0.0, "dir": "/tmp", "lost": 0, "duplicates": 0,
    }
    flat = bench.flatten(result)
    assert flat["report_p99_ms"] == 60.0 and flat["commit_ms"] == 1.0 and flat["commit_p99_ms"] == 2.0
    assert flat["aims"]["report_p99_ms"]["holds"] is False and flat["aims"]["commit_ms"]["holds"] is True
    text = bench.table(flat)
    assert "aim report_p99_ms < 50 ms: 60.000 ms, MISSED" in text
    assert "aim commit_ms < 2 ms: 1.000 ms, holds" in text
    assert "(not measured)" in text and "os.fsync" in text and "read round trip" in text
