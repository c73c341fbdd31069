"""The `cellctl` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cellctl import __version__
from cellctl.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"cellctl {__version__}"


def test_chart_list_names_the_cell_charts_and_the_demo() -> None:
    result = runner.invoke(app, ["chart", "list"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert {"cell", "stow", "pick", "stow_demo"} <= set(names) and "states" in result.output


def test_chart_export_mermaid_and_scxml(tmp_path: Path) -> None:
    result = runner.invoke(app, ["chart", "export", "stow_demo", "--format", "mermaid"])
    assert result.exit_code == 0 and "stateDiagram-v2" in result.output
    out = tmp_path / "demo.scxml"
    result = runner.invoke(app, ["chart", "export", "stow_demo", "--format", "scxml", "-o", str(out)])
    assert result.exit_code == 0
    assert out.read_text().startswith("<?xml") and "<scxml" in out.read_text()


def test_chart_export_rejects_unknown_chart_and_format() -> None:
    result = runner.invoke(app, ["chart", "export", "nope"])
    assert result.exit_code == 2 and "no chart named 'nope'" in result.output
    result = runner.invoke(app, ["chart", "export", "stow_demo", "--format", "png"])
    assert result.exit_code == 2


def test_chart_check_ok_and_findings(monkeypatch) -> None:
    result = runner.invoke(app, ["chart", "check"])
    assert result.exit_code == 0 and "stow_demo: ok" in result.output

    from statecharts import catalog
    from tests.statecharts.engine.test_check import flawed_chart

    monkeypatch.setitem(catalog.CHARTS, "flawed", catalog.Entry(flawed_chart))
    result = runner.invoke(app, ["chart", "check", "flawed"])
    assert result.exit_code == 1
    assert "flawed: 6 finding(s)" in result.output
    assert "  - dead-end: stuck:" in result.output


def test_bad_log_level_is_a_clear_error() -> None:
    result = runner.invoke(app, ["--log-level", "loud", "chart", "list"])
    assert result.exit_code == 2 and "unknown log level 'loud'" in result.output


def test_logs_are_json_lines_when_not_a_terminal(tmp_path: Path) -> None:
    out = tmp_path / "x.mmd"
    proc = subprocess.run(
        [sys.executable, "-m", "cellctl", "chart", "export", "stow_demo", "-o", str(out)],
        capture_output=True, text=True, check=True,
    )
    record = json.loads(proc.stderr.strip().splitlines()[-1])
    assert record["event"] == "chart exported" and record["level"] == "info" and record["chart"] == "stow_demo"
    assert proc.stdout == ""


def test_chart_simulate_prints_the_virtual_time_trace() -> None:
    args = ["chart", "simulate", "stow_demo", "-e", "0:start", "-e", "20:start", "-e", "22:pause", "-e", "30:resume"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    entered_on_resume = [r["state"] for r in records if r["kind"] == "entry" and r["time"] == 30.0]
    assert entered_on_resume == ["cycle", "arm", "insert", "band", "band_closed"]  # history: back to insert
    assert records[-1]["time"] <= 60.0  # --until defaults to 60 virtual seconds
    again = runner.invoke(app, [*args, "--json"])
    assert again.stdout == result.stdout  # virtual time: the same trace every run


def test_chart_simulate_rejects_bad_scripted_events() -> None:
    for bad in ("start", "-1:start", "x:start", "nan:start", "3:"):
        result = runner.invoke(app, ["chart", "simulate", "stow_demo", "-e", bad])
        assert result.exit_code == 2, bad
        assert "SECONDS:EVENT" in result.output


def test_sim_json_is_deterministic_and_replays(tmp_path: Path) -> None:
    log_file = tmp_path / "sim.mcap"
    args = ["sim", "--task", "mixed", "--cycles", "6", "--seed", "4", "--json"]
    first = runner.invoke(app, [*args, "--log", str(log_file)])
    second = runner.invoke(app, args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    a, b = json.loads(first.output), json.loads(second.output)
    for key in ("task", "seed", "cycles", "outcomes", "wrong_item_picks", "handoff_reasons", "virtual_s",
                "units_per_hour", "trace_sha256", "wall_s"):
        assert key in a
    assert a["perception"] == "learned"  # the default: the shipped models on camera frames
    a.pop("wall_s"), b.pop("wall_s"), a.pop("log"), b.pop("log")
    assert a == b
    replayed = runner.invoke(app, ["replay", str(log_file), "--json"])
    assert replayed.exit_code == 0, replayed.output
    out = json.loads(replayed.output)
    assert out["diverged"] is False and out["records"] > 0 and out["transitions"] == a["transitions"]


def test_replay_of_a_bad_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"not an mcap file")
    result = runner.invoke(app, ["replay", str(bad)])
    assert result.exit_code == 2
    assert "error" in result.output


def test_sim_with_missing_or_damaged_models_exits_2_naming_the_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sim", "--cycles", "1", "--models", str(tmp_path)])
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'segmenter.onnx'}: no such file" in result.output
    for kind in ("segmenter", "pick", "embedding"):
        (tmp_path / f"{kind}.onnx").write_bytes(b"\x08\x07garbage, not a model")
    result = runner.invoke(app, ["sim", "--cycles", "1", "--models", str(tmp_path)])
    assert result.exit_code == 2 and f"error: {tmp_path / 'segmenter.onnx'}" in result.output
    assert "Traceback" not in result.output
    oracle = runner.invoke(app, ["sim", "--cycles", "1", "--perception", "oracle", "--models", str(tmp_path),
                                 "--json"])
    assert oracle.exit_code == 0 and json.loads(oracle.output)["perception"] == "oracle"  # loads no model


def test_sim_rejects_a_bad_profile() -> None:
    result = runner.invoke(app, ["sim", "--faults", "stormy"])
    assert result.exit_code == 2
