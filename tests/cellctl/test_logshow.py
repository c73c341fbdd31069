"""`cellctl log show`: the timeline, its filters and its error path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cellctl.cli import app
from cellctl.eventlog import EventLog, LogRecord
from cellctl.logshow import line, summary

runner = CliRunner()


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "shift.mcap"
    with EventLog.open(path) as log:
        log.add_channel("chart.transition", "Transition", {"type": "object"})
        log.add_channel("plc.in", "PlcIn", {"type": "object"})
        ft = log.batcher("ft")
        log.write("plc.in", 0.1, {"node": "Cell.Conveyor.Speed", "value": 0.25, "status": "Good"})
        for k in range(10):
            ft.add(1.0 + k * 0.001, (3.0, 4.0, 0.0, 0.0, 0.0, 0.5 * k))
        ft.flush()
        log.write(
            "chart.transition", 1.5, {"chart": "stow", "state": "approach", "target": ["contact"], "event": "ft.touch"}
        )
        log.write("plc.in", 2.25, {"node": "Cell.Door", "value": "open door", "extra": {"a": [1, 2]}})
    return path


def test_timeline_lines(log_path: Path) -> None:
    result = runner.invoke(app, ["log", "show", str(log_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["0.100", "plc.in", "node=Cell.Conveyor.Speed", "value=0.25", "status=Good"]
    assert lines[1].split()[:2] == ["1.000", "ft"] and "10 samples over 9.0 ms max|F|=5 max|T|=4.5" in lines[1]
    assert lines[2].split()[:2] == ["1.500", "chart.transition"]
    assert lines[2].endswith("stow: approach -> contact on ft.touch")
    assert lines[3].endswith('node=Cell.Door value="open door" extra={"a":[1,2]}')


def test_filters_by_topic_time_and_limit(log_path: Path) -> None:
    def times(*args: str) -> list[str]:
        result = runner.invoke(app, ["log", "show", str(log_path), *args])
        assert result.exit_code == 0, result.output
        return [text.split()[0] for text in result.output.splitlines()]

    assert times("--topic", "plc.in") == ["0.100", "2.250"]
    assert times("-t", "plc.in", "-t", "ft") == ["0.100", "1.000", "2.250"]
    assert times("--since", "1", "--until", "2.25") == ["1.000", "1.500"]
    assert times("--limit", "2") == ["0.100", "1.000"]
    assert times("--topic", "nothing") == []


def test_json_lines(log_path: Path) -> None:
    result = runner.invoke(app, ["log", "show", str(log_path), "--json", "--topic", "chart.transition"])
    assert result.exit_code == 0
    [record] = [json.loads(text) for text in result.output.splitlines()]
    assert record == {
        "t": 1.5,
        "topic": "chart.transition",
        "payload": {"chart": "stow", "state": "approach", "target": ["contact"], "event": "ft.touch"},
    }


@pytest.mark.parametrize("content", [None, b"PK\x03\x04 a zip, not a log"], ids=["missing", "not-mcap"])
def test_bad_file_is_one_line_on_stderr_and_exit_2(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "bad.mcap"
    if content is not None:
        path.write_bytes(content)
    result = runner.invoke(app, ["log", "show", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    [message] = result.stderr.splitlines()
    assert message.startswith("error: ") and "bad.mcap" in message and "Traceback" not in result.output


def test_help_names_the_options() -> None:
    result = runner.invoke(app, ["log", "show", "--help"])
    assert result.exit_code == 0
    for option in ("--topic", "--since", "--until", "--limit", "--json"):
        assert option in result.output


def test_long_payloads_are_cut_and_sources_shown() -> None:
    text = line(LogRecord(3.0, "plc.in", {"blob": "y" * 500}))
    assert len(text) == 160 and text.endswith("…")
    assert summary({"source": "idle", "target": "busy"}) == "idle -> busy"
    assert summary({"t0": 0.0, "dt_ns": [], "a": []}) == "0 samples over 0.0 ms"
