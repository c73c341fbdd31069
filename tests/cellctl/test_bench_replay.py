"""bench/replay.py on a short shift: one JSON object with finite, positive figures and no divergence."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "replay.py"
KEYS = (
    "replay_speedup", "replay_records_per_s", "log_records_per_s", "log_bytes_per_record", "log_cpu_fraction",
    "shift_s", "cycles", "log_records", "log_bytes", "replay_wall_s",
)


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_replay", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_shift_prints_one_json_object_with_positive_figures(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bench = load_bench()
    rc = bench.main(["--minutes", "0.5", "--repeat", "1", "--keep", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in KEYS:
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert math.isfinite(value) and value > 0, (key, value)
    assert result["diverged"] is False
    assert result["sim_log"]["diverged"] is False and result["ft_1khz"]["diverged"] is False
    assert result["shift_s"] >= 30.0
    # the continuous 1 kHz stream: one record per 10 ms on top of the shift's own records
    assert result["log_records"] >= result["shift_s"] * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shift-ft1khz.mcap", "shift-sim.mcap"]


def test_the_temporary_logs_are_removed(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_bench()
    monkeypatch.setattr(bench.tempfile, "tempdir", str(tmp_path))
    assert bench.main(["--minutes", "0.2", "--repeat", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["diverged"] is False
    assert list(tmp_path.iterdir()) == []
