"""`cellctl run`: the controller in real time against the simulated cell behind OPC UA, Modbus TCP and UDP.

Primitive durations are scaled down (time_scale) so a stow cycle takes under a second of wall time; the
protocols, drivers, reflex and charts are the real ones.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest

from cellctl.commands.replay import Entry, replay
from cellctl.commands.run import run_cell
from cellctl.config import ConfigError, RunConfig, load_config
from cellctl.eventlog import read_log
from cellctl.runtime.cell import CellRun, Command

pytestmark = pytest.mark.anyio

FAST = 0.05


def _config(tmp_path: Path, *, task: str = "stow", cycles: int = 3, faults: str = "none") -> RunConfig:
    text = (f'[cell]\ntask = "{task}"\ncycles = {cycles}\nstatus_period_s = 0.2\n'
            f'[log]\ndir = "{tmp_path}"\n[fc]\nport = 0\n[sim]\ntime_scale = {FAST}\nfaults = "{faults}"\nseed = 5\n')
    path = tmp_path / "cell.toml"
    path.write_text(text)
    return load_config(path)


async def test_run_stows_over_the_real_protocols_and_replays(tmp_path: Path) -> None:
    out = io.StringIO()
    with anyio.fail_after(60):
        summary = await run_cell(_config(tmp_path, cycles=3), out=out)
    assert summary["end_state"] == "complete"
    assert summary["outcomes"]["done"] >= 2 and sum(summary["outcomes"].values()) == 3
    assert summary["perception"] == "learned"  # the default: the shipped models on the camera's frames
    records = list(read_log(Path(summary["log"])))
    topics = Counter(r.topic for r in records)
    devices = next(r.payload for r in records if r.topic == "run.devices")
    assert devices["perception"] == "learned"
    # inputs (sensor samples over UDP and Modbus, replies), outputs (calls) and transitions are all there
    assert topics["ft.wrench"] > 10 and topics["robot.suction"] > 0
    assert topics["port.call"] > 0 and topics["port.reply"] > 0 and topics["chart.transition"] > 0
    moves = [r.payload["args"] for r in records if r.topic == "port.call" and r.payload["method"] == "move"]
    assert any(m["motion"]["primitive"] == "eject_item" for m in moves)
    assert topics["run.end"] == 1
    entries = [Entry(r.t_s, r.topic, r.payload) for r in records]
    result = await anyio.to_thread.run_sync(replay, entries)  # replay runs its own (virtual-time) loop
    assert not result["diverged"], result["first_divergence"]
    assert result["transitions"] == result["recorded_transitions"] > 0


async def test_harsh_faults_over_the_protocols_end_every_cycle_with_a_report(tmp_path: Path) -> None:
    with anyio.fail_after(90):
        summary = await run_cell(_config(tmp_path, cycles=10, faults="harsh"), out=io.StringIO())
    assert summary["end_state"] == "complete"
    records = list(read_log(Path(summary["log"])))
    reports = [r.payload["args"]["report"] for r in records
               if r.topic == "port.call" and r.payload["method"] == "report"]
    assert len({r["task_id"] for r in reports}) == 10
    assert all(r["outcome"] in ("done", "handoff", "fault") for r in reports)
    assert all(r["reason"] for r in reports if r["outcome"] != "done")
    assert sum(r["outcome"] == "done" for r in reports) >= 5
    entries = [Entry(r.t_s, r.topic, r.payload) for r in records]
    result = await anyio.to_thread.run_sync(replay, entries)
    assert not result["diverged"], result["first_divergence"]


async def test_stop_mid_cycle_is_safe_and_closes_the_log(tmp_path: Path) -> None:
    async def stop_soon(run: CellRun) -> None:
        await run.runner.wait_for("execute")
        await anyio.sleep(0.3)  # somewhere inside the first stow cycle
        await run.command(Command("cmd.stop"))

    async with anyio.create_task_group() as tg:
        summary = await run_cell(_config(tmp_path, cycles=0), out=io.StringIO(),
                                 on_ready=lambda run: tg.start_soon(stop_soon, run))
    assert summary["end_state"] == "stopped"
    records = list(read_log(Path(summary["log"])))
    reports = [r for r in records if r.topic == "port.call" and r.payload["method"] == "report"]
    assert reports, "the interrupted cycle is reported"
    assert records[-1].topic == "run.end"
    # Every report is counted: the interrupted one too, in the summary and in run.end.
    assert summary["cycles"] == summary["reports"] == len(reports) == sum(summary["outcomes"].values())
    assert summary["interrupted"] == 1
    assert records[-1].payload["cycles"] == len(reports)
    # Driver incidents go to the log (and their sums to run.end), not only to stderr.
    assert any(r.topic == "driver.incidents" for r in records)
    assert set(records[-1].payload["incidents"]) == {"plc", "robot", "ft", "reflex"}


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[robot]\nport = 70000\n[cell]\ntask = "sort"\n')
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    text = str(err.value)
    assert "robot.port" in text and "cell.task" in text and str(bad) in text
    with pytest.raises(ConfigError, match="not valid TOML"):
        bad.write_text("[cell\n")
        load_config(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")


def test_ctrl_c_stops_the_process_cleanly(tmp_path: Path) -> None:
    cfg = tmp_path / "cell.toml"
    cfg.write_text(f'[cell]\nstatus_period_s = 0.2\n[log]\ndir = "{tmp_path}"\n[fc]\nport = 0\n'
                   f'[sim]\ntime_scale = {FAST}\n')
    proc = subprocess.Popen([sys.executable, "-m", "cellctl", "run", "--config", str(cfg), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        assert proc.stderr is not None
        for line in proc.stderr:  # wait for the first stowed item (a status line with done >= 1)
            if '"done 1 ' in line or " done 1 " in line:
                break
            assert time.monotonic() < deadline, "no stow within 60 s"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    import json

    summary = json.loads(out)
    assert summary["end_state"] == "stopped" and summary["outcomes"]["done"] >= 1
    assert list(read_log(Path(summary["log"])))[-1].topic == "run.end"
