"""`cellctl log show`: the timeline, its filters, how the log ends and its error path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cellctl.cli import app
from cellctl.commands.log import line, summary
from cellctl.eventlog import EventLog, LogRecord
from cellctl.eventlog.recorder import LogRecorder

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
    assert len(lines) == 5
    assert lines[0].split() == ["0.100", "plc.in", "node=Cell.Conveyor.Speed", "value=0.25", "status=Good"]
    assert lines[1].split()[:2] == ["1.000", "ft"] and "10 samples over 9.0 ms max|F|=5 max|T|=4.5" in lines[1]
    assert lines[2].split()[:2] == ["1.500", "chart.transition"]
    assert lines[2].endswith("stow: approach -> contact on ft.touch")
    assert lines[3].endswith('node=Cell.Door value="open door" extra={"a":[1,2]}')
    assert lines[4] == "log ends: complete (4 records, footer intact)"


def test_filters_by_topic_time_and_limit(log_path: Path) -> None:
    def times(*args: str) -> list[str]:
        result = runner.invoke(app, ["log", "show", str(log_path), *args])
        assert result.exit_code == 0, result.output
        *lines, ending = result.output.splitlines()
        assert ending == "log ends: complete (4 records, footer intact)"  # whatever the filters show
        return [text.split()[0] for text in lines]

    assert times("--topic", "plc.in") == ["0.100", "2.250"]
    assert times("-t", "plc.in", "-t", "ft") == ["0.100", "1.000", "2.250"]
    assert times("--since", "1", "--until", "2.25") == ["1.000", "1.500"]
    assert times("--limit", "2") == ["0.100", "1.000"]
    assert times("--topic", "nothing") == []


def test_json_lines(log_path: Path) -> None:
    result = runner.invoke(app, ["log", "show", str(log_path), "--json", "--topic", "chart.transition"])
    assert result.exit_code == 0
    [record, ending] = [json.loads(text) for text in result.output.splitlines()]
    assert record == {
        "t": 1.5,
        "topic": "chart.transition",
        "payload": {"chart": "stow", "state": "approach", "target": ["contact"], "event": "ft.touch"},
    }
    assert ending["ending"]["kind"] == "complete" and ending["ending"]["records"] == 4
    assert ending["ending"]["byte"] is None and ending["ending"]["file"] == str(log_path)


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


def _killed(path: Path, n: int = 3000) -> bytes:
    """The bytes a killed writer leaves: several flushed chunks, no footer."""
    log = EventLog.open(path)
    log.add_channel("seq", "Seq", {"type": "object"})
    for i in range(n):
        log.write("seq", i * 0.001, {"i": i, "pad": "x" * (i % 37)})
        if i % 1000 == 999:
            log.flush()
    data = path.read_bytes()
    log.close()
    return data


def test_a_torn_log_is_shown_and_its_last_line_says_where_it_was_cut(tmp_path: Path) -> None:
    path = tmp_path / "killed.mcap"
    path.write_bytes(_killed(tmp_path / "run.mcap")[:-7])
    result = runner.invoke(app, ["log", "show", str(path)])
    assert result.exit_code == 0, result.output
    *records, ending = result.stdout.splitlines()
    assert 2900 < len(records) < 3000
    assert ending.startswith("log ends: torn at byte ") and "of killed.mcap (a chunk of " in ending
    assert f"; {len(records)} records read, " in ending and "recovered from the cut chunk" in ending
    as_json = runner.invoke(app, ["log", "show", str(path), "--json", "--limit", "3"])
    assert as_json.exit_code == 0, as_json.output
    *shown, last = [json.loads(text) for text in as_json.stdout.splitlines()]
    assert [r["payload"]["i"] for r in shown] == [0, 1, 2]
    assert last["ending"]["kind"] == "torn" and last["ending"]["missing_bytes"] == 7
    assert last["ending"]["records"] == len(records) and f"torn at byte {last['ending']['byte']} " in ending


def test_a_corrupt_log_shows_what_precedes_the_corruption_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.mcap"
    data = bytearray(_killed(tmp_path / "run.mcap"))
    data[9:12] = b"\xff\xff\xff"  # 3 bytes of the first record's (the header's) length field
    path.write_bytes(bytes(data))
    result = runner.invoke(app, ["log", "show", str(path)])
    assert result.exit_code == 2
    [ending] = result.stdout.splitlines()
    assert ending.startswith("log ends: corrupt at byte 8 of bad.mcap: its length field")
    [message] = result.stderr.splitlines()
    assert message.startswith("error: ") and "bad.mcap: corrupt header at byte 8" in message
    as_json = runner.invoke(app, ["log", "show", str(path), "--json"])
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["ending"]["kind"] == "corrupt"


def test_the_log_of_a_run_stopped_before_the_cell_started_is_shown(tmp_path: Path) -> None:
    path = tmp_path / "not-started.mcap"
    with EventLog.open(path) as log:  # as `cellctl run` writes it on a SIGTERM before the cell starts
        recorder = LogRecorder(log)
        recorder.record("run.meta", 10.0, {"mode": "run", "task": "stow", "cycles": None, "seed": 5})
        recorder.record("run.end", 10.5, {"task": "stow", "end_state": "not started", "cycles": 0,
                                          "outcomes": {"done": 0, "handoff": 0, "fault": 0}, "transitions": 0})
    result = runner.invoke(app, ["log", "show", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [text.split()[1] for text in lines[:2]] == ["run.meta", "run.end"]
    assert "end_state=\"not started\"" in lines[1]
    assert lines[2:] == ["log ends: complete (2 records, footer intact)"]
