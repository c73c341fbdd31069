"""`cellctl replay` on logs that do not end with the run: a killed `cellctl run`, a torn file, a corrupt one, and a
run stopped before the cell started. Exit 1 is kept for a behavioural divergence, 2 for a log that cannot be read,
3 for a log that ends without run.end (what it holds replays without divergence)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from cellctl.cli import app
from cellctl.commands.sim import SimOptions, run_sim
from cellctl.eventlog import EventLog, read_log
from cellctl.eventlog.recorder import LogRecorder

runner = CliRunner()


def _replay(path: Path, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    result = runner.invoke(app, ["replay", str(path), "--json", *args])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None, result.stderr


def _sim_log(path: Path, cycles: int = 6) -> bytes:
    run_sim(SimOptions("stow", cycles, 2, log=path, perception="oracle"))  # type: ignore[arg-type]
    return path.read_bytes()


def test_a_run_stopped_before_the_cell_started_has_nothing_to_replay(tmp_path: Path) -> None:
    path = tmp_path / "not-started.mcap"
    with EventLog.open(path) as log:  # the log `cellctl run` leaves after a SIGTERM before the cell starts
        recorder = LogRecorder(log)
        recorder.record("run.meta", 20.0, {"mode": "run", "task": "stow", "cycles": None, "seed": 5,
                                           "faults": "none"})
        recorder.record("run.end", 20.4, {"task": "stow", "end_state": "not started", "cycles": 0,
                                          "outcomes": {"done": 0, "handoff": 0, "fault": 0}, "transitions": 0})
    code, out, err = _replay(path)
    assert code == 0, (out, err)
    assert out is not None and out["replayed"] is False and out["diverged"] is False
    assert out["ending"] == "complete" and out["records"] == 2 and out["transitions"] == 0
    assert out["message"] == "nothing to replay: the cell never ran (end_state 'not started')"
    text = runner.invoke(app, ["replay", str(path)])
    assert text.exit_code == 0
    assert text.stdout.splitlines()[-1].split(None, 1) == ["message", out["message"]]


def test_a_torn_log_replays_as_far_as_it_goes_and_says_where_it_ends(tmp_path: Path) -> None:
    data = _sim_log(tmp_path / "sim.mcap")
    code, whole, _ = _replay(tmp_path / "sim.mcap")
    assert code == 0 and whole is not None and whole["ending"] == "complete" and whole["message"] is None
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) * 6 // 10])
    code, out, err = _replay(cut)
    assert code == 3, (out, err)
    assert out is not None and out["diverged"] is False and out["first_divergence"] is None
    assert out["ending"] == "incomplete" and out["file_ending"]["kind"] == "torn"
    last = max(r.t_s for r in read_log(cut))
    assert out["message"].startswith(f"log ends without run.end at t={last:.3f}; the file is torn at byte ")
    assert 0 < out["transitions"] == out["recorded_transitions"] < whole["recorded_transitions"]
    assert out["virtual_s"] < whole["virtual_s"]


def test_a_divergence_in_a_torn_log_is_still_a_divergence(tmp_path: Path) -> None:
    _sim_log(tmp_path / "sim.mcap")
    records = list(read_log(tmp_path / "sim.mcap"))
    # Alter one recorded input: the 2nd successful eject now reports a force-limit trip.
    ejects = [i for i, r in enumerate(records) if r.topic == "port.reply" and r.payload["method"] == "move"
              and r.payload["result"]["outcome"] == "done" and "in P1" in r.payload["result"]["detail"]]
    altered = records[ejects[1]]
    altered.payload["result"]["outcome"] = "force_limit"
    path = tmp_path / "altered.mcap"
    with EventLog.open(path) as log:
        recorder = LogRecorder(log)
        for r in records:
            recorder.record(r.topic, r.t_s, r.payload)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 9 // 10])
    code, out, err = _replay(path)
    assert code == 1, (out, err)
    assert out is not None and out["diverged"] is True and out["ending"] == "incomplete"
    assert abs(out["first_divergence"]["time"] - altered.t_s) < 1e-6


def test_a_corrupt_log_is_not_replayed(tmp_path: Path) -> None:
    data = bytearray(_sim_log(tmp_path / "sim.mcap", cycles=2))
    data[9:12] = b"\xff\xff\xff"  # 3 bytes of the first record's (the header's) length field
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(bytes(data))
    code, out, err = _replay(bad)
    assert code == 2 and out is None
    assert "bad.mcap: corrupt header at byte 8" in err


def test_a_killed_run_replays_up_to_where_its_log_ends(tmp_path: Path) -> None:
    cfg = tmp_path / "cell.toml"
    cfg.write_text(f'[cell]\ncycles = 0\nstatus_period_s = 0.2\n[log]\ndir = "{tmp_path}"\n[fc]\nport = 0\n'
                   '[sim]\ntime_scale = 0.05\nseed = 5\n')
    proc = subprocess.Popen([sys.executable, "-m", "cellctl", "run", "--config", str(cfg), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        assert proc.stderr is not None
        for line in proc.stderr:  # the first item stowed, then a kill in the middle of the next cycle
            if " done 1 " in line or '"done 1 ' in line:
                break
            assert time.monotonic() < deadline, "no stow within 60 s"
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    [log] = tmp_path.glob("cellctl-run-*.mcap")
    assert "run.end" not in {r.topic for r in read_log(log)}
    code, out, err = _replay(log)
    assert code == 3, (out, err)
    assert out is not None and out["diverged"] is False, out["first_divergence"]
    assert out["ending"] == "incomplete" and out["message"].startswith("log ends without run.end at t=")
    assert out["transitions"] > 0 and out["file_ending"]["kind"] == "torn"
    shown = runner.invoke(app, ["log", "show", str(log)])
    assert shown.exit_code == 0
    assert shown.stdout.splitlines()[-1].startswith("log ends: torn at byte ")
