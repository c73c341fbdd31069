"""`cellctl run` stops safely, over the real protocols: one stop from one sender is one stop (not an abort),
a stop before the cell runs leaves a log that `log show` and `replay` accept, a full log disk stops the cell
the safe way (retract, band hook up) with an error naming the file and ENOSPC, and every report is counted."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from cellctl.commands.run import run_cell
from cellctl.config import load_config
from cellctl.eventlog import read_log
from cellctl.eventlog import writer as log_writer
from cellctl.runtime.cell import CellRun
from statecharts.workcell import Motion, MotionResult

FAST = 0.05


def _config_file(tmp_path: Path, cycles: int = 0) -> Path:
    cfg = tmp_path / "cell.toml"
    cfg.write_text(f'[cell]\ncycles = {cycles}\nstatus_period_s = 0.2\n[log]\ndir = "{tmp_path}"\n[fc]\nport = 0\n'
                   f'[sim]\ntime_scale = {FAST}\nseed = 5\n')
    return cfg


def _start(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cellctl", "run", "--config", str(_config_file(tmp_path)),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)


def _lines_until(proc: subprocess.Popen[str], needle: str, timeout_s: float = 60.0) -> Iterator[str]:
    deadline = time.monotonic() + timeout_s
    assert proc.stderr is not None
    for line in proc.stderr:
        yield line
        if needle in line:
            return
        assert time.monotonic() < deadline, f"no {needle!r} within {timeout_s} s"
    raise AssertionError(f"the process ended before {needle!r}")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cellctl", *args], capture_output=True, text=True, timeout=120)


def test_a_term_to_the_child_and_its_group_is_one_stop_not_an_abort(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    try:
        for _ in _lines_until(proc, " done 1 "):
            pass
        # What `timeout -s TERM` does: the child, then its process group (0.4 ms later there; a few ms here, so
        # that the two are not merged into one by the kernel before the process takes the first).
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["end_state"] == "stopped", summary
    assert "aborting" not in err


def test_a_term_before_the_cell_runs_exits_cleanly_with_a_log_that_opens(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("cellctl-run-*.mcap")):  # the log is open: the devices are starting
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["end_state"] == "not started" and summary["stopped_before_start"] == "SIGTERM received"
    assert "stopped before the cell started" in err
    log = Path(summary["log"])
    assert [r.topic for r in read_log(log)] == ["run.meta", "run.end"]
    shown = _cli("log", "show", str(log))
    assert shown.returncode == 0, shown.stderr
    replayed = _cli("replay", str(log), "--json")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr


class _DiskFull:
    """`_CountingFile.write` as on a disk that fills: ENOSPC from `full` on (the file's bytes stop there)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        self.failed_at: float | None = None
        real = log_writer._CountingFile.write

        def write(f: Any, data: bytes) -> int:
            if self.full:
                if self.failed_at is None:  # any thread (the log's flusher too): the loop's clock is monotonic
                    self.failed_at = time.monotonic()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(f, data)

        monkeypatch.setattr(log_writer._CountingFile, "write", write)


@pytest.mark.anyio
async def test_a_full_log_disk_stops_the_cell_safely_and_names_the_file(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    disk = _DiskFull(monkeypatch)
    calls: list[tuple[float, str, str]] = []

    def watch(run: CellRun) -> None:
        port = run.data.workcell.inner.inner  # the DriverWorkcell behind the reporting and recording ports
        move, set_hook = port.move, port.set_hook

        async def logged_move(motion: Motion) -> MotionResult:
            if motion.primitive.value == "eject_item" and not disk.full:
                disk.full = True  # the disk fills while the item is being ejected
            result = await move(motion)
            calls.append((time.monotonic(), motion.primitive.value, result.outcome.value))
            return result

        async def logged_hook(down: bool, timeout_s: float) -> MotionResult:
            result = await set_hook(down, timeout_s)
            calls.append((time.monotonic(), "hook down" if down else "hook up", result.outcome.value))
            return result

        port.move, port.set_hook = logged_move, logged_hook

    with anyio.fail_after(60):
        summary = await run_cell(load_config(_config_file(tmp_path)), out=io.StringIO(), on_ready=watch)
    assert summary["end_state"] == "stopped", summary
    assert "ENOSPC" in summary["error"] and summary["log"] in summary["error"]
    assert summary["log_records_lost"] > 0
    assert disk.failed_at is not None
    after = [(what, outcome) for t, what, outcome in calls if t >= disk.failed_at]
    assert ("retract", "done") in after, calls
    assert after[-1] == ("hook up", "done"), calls  # the band hook lifted last


def test_the_cli_exits_2_on_a_full_log_disk_after_a_safe_stop(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cellctl.cli import app

    real = log_writer._CountingFile.write
    monkeypatch.setattr(log_writer._CountingFile, "write", _budgeted(real, 60_000))
    result = CliRunner().invoke(app, ["run", "--config", str(_config_file(tmp_path)), "--json"])
    assert result.exit_code == 2, result.output + result.stderr
    assert "ENOSPC" in result.stderr and "cellctl-run-stow-" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["end_state"] == "stopped"


def _budgeted(real: Any, budget: int) -> Any:
    left = [budget]

    def write(f: Any, data: bytes) -> int:
        left[0] -= len(data)
        if left[0] < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(f, data)

    return write
