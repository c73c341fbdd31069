"""The MCAP event log: round trip, schemas, rotation, crash tolerance, how a log ends, batching."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcap.reader import NonSeekingReader, make_reader
from mcap.writer import Writer
from pydantic import BaseModel

from cellctl.eventlog import (
    EventLog,
    LogFormatError,
    SampleBatcher,
    iter_samples,
    part_path,
    read_log,
    rotated_set,
)
from cellctl.eventlog.writer import ZSTD_BLOCK_BYTES, encode

SEQ_SCHEMA = {"type": "object", "properties": {"i": {"type": "integer"}}, "required": ["i"]}


class Reply(BaseModel):
    device: str
    ok: bool
    pose: list[float]


class Report(BaseModel):
    bin: int
    items: list[str] = []


def _seq_log(path: Path, n: int, **kwargs) -> EventLog:
    log = EventLog.open(path, **kwargs)
    log.add_channel("seq", "Seq", SEQ_SCHEMA)
    for i in range(n):
        log.write("seq", i * 0.001, {"i": i, "pad": "x" * (i % 37)})
    return log


def test_round_trip_of_several_channels_and_models(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    with EventLog.open(path) as log:
        log.add_channel("plc.in", "PlcIn", {"type": "object"})
        log.add_channel("robot.reply", Reply)
        log.write("plc.in", 0.5, {"node": "Speed", "value": 1.25, "nan": float("nan")})
        log.write("robot.reply", 0.25, Reply(device="robot", ok=True, pose=[1, 2, 3]))
        log.write("report", 1.0, Report(bin=3, items=["a"]))  # a model declares its own topic
        log.write("plc.in", 0.25, {"node": "Speed", "value": 2})  # same time: written order kept
        assert log.records_written == 4
    assert log.closed and log.bytes_written == path.stat().st_size
    log.close()  # idempotent

    records = list(read_log(path))
    assert [(r.t_s, r.topic) for r in records] == [
        (0.25, "robot.reply"), (0.25, "plc.in"), (0.5, "plc.in"), (1.0, "report"),
    ]
    assert Reply.model_validate(records[0].payload) == Reply(device="robot", ok=True, pose=[1, 2, 3])
    assert records[2].payload == {"node": "Speed", "value": 1.25, "nan": None}  # JSON has no NaN
    assert Report.model_validate(records[3].payload).items == ["a"]
    assert [r.topic for r in read_log(path, topics=["plc.in"])] == ["plc.in", "plc.in"]
    assert [r.t_s for r in read_log(path, since_s=0.25, until_s=1.0)] == [0.25, 0.25, 0.5]


def test_every_channel_has_its_json_schema_and_standard_readers_agree(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    with EventLog.open(path) as log:
        log.add_channel("plc.in", "PlcIn", SEQ_SCHEMA)
        log.add_channel("robot.reply", Reply)
        log.batcher("ft")
        for i in range(10):
            log.write("plc.in", i, {"i": i})
    with open(path, "rb") as f:
        reader = make_reader(f)
        assert reader.get_header().profile == ""
        summary = reader.get_summary()
        assert summary is not None and summary.statistics.message_count == 10
        assert all(c.compression == "zstd" for c in summary.chunk_indexes)
        schemas = {}
        for channel in summary.channels.values():
            schema = summary.schemas[channel.schema_id]
            assert channel.message_encoding == "json" and schema.encoding == "jsonschema"
            schemas[channel.topic] = (schema.name, json.loads(schema.data))
        messages = [json.loads(m.data) for _, _, m in reader.iter_messages()]
    assert schemas["plc.in"] == ("PlcIn", SEQ_SCHEMA)
    assert schemas["robot.reply"] == (f"{__name__}.Reply", Reply.model_json_schema())
    assert schemas["ft"][0] == "cellctl.SampleBatch" and "dt_ns" in schemas["ft"][1]["required"]
    assert messages == [{"i": i} for i in range(10)]
    with open(path, "rb") as f:  # the linear reader (validating CRCs) reads it too
        assert len(list(NonSeekingReader(f, validate_crcs=True).iter_messages())) == 10


def test_channel_declaration_errors(tmp_path: Path) -> None:
    with EventLog.open(tmp_path / "run.mcap") as log:
        log.add_channel("a", "A", {"type": "object"})
        log.add_channel("a", "A", {"type": "object"})  # same again: fine
        with pytest.raises(ValueError, match="already declared"):
            log.add_channel("a", "B", {"type": "object"})
        with pytest.raises(KeyError, match="add_channel"):
            log.write("undeclared", 0.0, {"x": 1})
        with pytest.raises(ValueError, match="non-negative"):
            log.write("a", -1.0, {})
        with pytest.raises(TypeError):
            log.write("a", 0.0, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="closed"):
        log.write("a", 0.0, {})


def test_an_existing_log_is_not_clobbered_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    _seq_log(path, 3000, rotate_bytes=4096, chunk_bytes=1024).close()
    assert len(rotated_set(path)) > 2
    with pytest.raises(FileExistsError):
        EventLog.open(path)
    _seq_log(path, 5, overwrite=True).close()
    assert rotated_set(path) == [path]  # the old parts went too
    assert [r.payload["i"] for r in read_log(path)] == list(range(5))


def test_rotation_splits_by_size_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    n = 5000
    log = _seq_log(path, n, rotate_bytes=8192, chunk_bytes=2048)
    log.close()
    parts = log.paths
    assert len(parts) >= 4
    assert [p.name for p in parts[:3]] == ["run.mcap", "run-0001.mcap", "run-0002.mcap"]
    assert rotated_set(path) == parts
    assert sum(p.stat().st_size for p in parts) == log.bytes_written
    counts = []
    for part in parts:  # each part is a complete MCAP file with the channel declared again
        with open(part, "rb") as f:
            summary = make_reader(f).get_summary()
        assert summary is not None and [c.topic for c in summary.channels.values()] == ["seq"]
        counts.append(summary.statistics.message_count)
        assert part == parts[-1] or part.stat().st_size < 8192 + 2048 + 1024  # overshoot: at most a chunk
    assert sum(counts) == n
    assert [r.payload["i"] for r in read_log(path)] == list(range(n))
    # a later part reads on to the end of the set
    assert next(r.payload["i"] for r in read_log(parts[2])) == sum(counts[:2])
    assert [r.payload["i"] for r in read_log(parts[2])][-1] == n - 1


def test_records_come_out_in_log_time_order_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    times = [3.0, 1.0, 2.0, 0.5, 5.0, 4.0, 4.5, 0.1]
    with EventLog.open(path) as log:
        log.add_channel("t", "T", {"type": "object"})
        for k, t in enumerate(times):
            log.write("t", t, {"k": k})
            if k % 3 == 2:
                log.flush()  # overlapping chunks
    assert [r.t_s for r in read_log(path)] == sorted(times)


def test_idle_log_is_flushed_by_wall_time(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    with EventLog.open(path, flush_s=0.05) as log:
        log.add_channel("seq", "Seq", SEQ_SCHEMA)
        log.write("seq", 0.0, {"i": 0})
        deadline = time.monotonic() + 10
        while log.records_flushed < 1:  # nothing else is written: the flusher thread must do it
            assert time.monotonic() < deadline, "never flushed"
            time.sleep(0.01)
        assert [r.payload for r in read_log(path)] == [{"i": 0}]  # readable while still open


def test_truncated_file_yields_a_prefix(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    with EventLog.open(path) as log:
        log.add_channel("seq", "Seq", SEQ_SCHEMA)
        for i in range(400):
            log.write("seq", i * 0.01, {"i": i})
            if i % 40 == 39:
                log.flush()  # ten chunks
    data = path.read_bytes()
    full = [r.payload["i"] for r in read_log(path)]
    assert full == list(range(400))
    cut = tmp_path / "cut.mcap"
    seen = []
    for size in [0, 3, 8, 20, *range(40, len(data), 97), len(data) - 30, len(data) - 1]:
        cut.write_bytes(data[:size])
        reader = read_log(cut)
        got = [r.payload["i"] for r in reader]
        assert got == full[: len(got)], size
        assert reader.ending is not None and reader.ending.kind == "torn", (size, reader.ending)  # never corrupt
        assert reader.ending.records == len(got) and 0 <= reader.ending.offset <= size
        seen.append(len(got))
    assert seen == sorted(seen) and seen[0] == 0 and seen[-1] == 400
    assert len(set(seen)) >= 10  # every chunk boundary shows up


CHILD = """
import sys
from cellctl.eventlog import EventLog
log = EventLog.open(sys.argv[1], flush_s=0.02, rotate_bytes=int(sys.argv[2]))
log.add_channel("seq", "Seq", {"type": "object"})
flushed, i = 0, 0
print("started", flush=True)
while True:
    log.write("seq", i * 1e-3, {"i": i, "pad": "x" * (i % 23)})
    i += 1
    if log.records_flushed != flushed:
        flushed = log.records_flushed
        print("flushed", flushed, flush=True)
"""


@pytest.mark.parametrize("rotate_bytes", [256 << 20, 64 << 10], ids=["one-file", "rotating"])
def test_killed_writer_leaves_every_flushed_record(tmp_path: Path, rotate_bytes: int) -> None:
    path = tmp_path / "run.mcap"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(rotate_bytes)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "started"
        flushes = []
        deadline = time.monotonic() + 60
        rotating = rotate_bytes < 1 << 20
        # enough flushes and records to tear mid-chunk (and, rotating, a second file begun)
        while len(flushes) < 8 or flushes[-1] < 3000 or (rotating and not part_path(path, 1).exists()):
            assert time.monotonic() < deadline, f"child too slow: {flushes[-3:]}"
            line = proc.stdout.readline()
            assert line.startswith("flushed"), line
            flushes.append(int(line.split()[1]))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    confirmed = max([*flushes, *(int(line.split()[1]) for line in proc.stdout if line.startswith("flushed"))])
    proc.stdout.close()

    reader = read_log(path)
    records = list(reader)
    assert reader.ending is not None and reader.ending.kind == "torn"  # no footer: the writer never finished
    indices = [r.payload["i"] for r in records]
    assert indices == list(range(len(indices)))  # in order, nothing lost or doubled
    assert len(indices) >= confirmed
    assert all(r.payload["pad"] == "x" * (r.payload["i"] % 23) for r in records)
    assert [r.t_s for r in records] == pytest.approx([i * 1e-3 for i in indices], abs=1e-9)
    if rotating:
        assert len(rotated_set(path)) > 1


def test_batcher_keeps_every_sample(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    samples = []
    t = 10.0
    for k in range(2345):
        t += 0.001 if k % 100 else 0.05  # gaps too
        samples.append((t, (k * 0.5, -k, 1e-7 * k, 0.0, 3.0, k % 7 - 3.25)))
    with EventLog.open(path) as log:
        ft = log.batcher("ft", max_span_s=0.01, max_samples=8)
        for t_s, values in samples:
            ft.add(t_s, values)
        assert ft.pending  # the last batch is written by close()
    records = list(read_log(path))
    assert all(len(r.payload["dt_ns"]) <= 8 and r.t_s == pytest.approx(r.payload["t0"], abs=1e-9) for r in records)
    got = [s for r in records for s in iter_samples(r)]
    assert [v for _, v in got] == [v for _, v in samples]  # values exact
    assert [t for t, _ in got] == pytest.approx([t for t, _ in samples], abs=1e-9)


def test_batcher_spans_and_standalone_use() -> None:
    batcher = SampleBatcher("ft", ("a", "b"), max_span_s=0.01)
    for k in range(25):
        batcher.add(k * 0.001, (k, -k))
    batcher.add(0.0, (99, 99))  # back in time: starts a new batch
    batcher.flush()
    assert [len(b["dt_ns"]) for b in batcher.emitted] == [10, 10, 5, 1]
    assert batcher.emitted[1] == {
        "t0": 0.01, "dt_ns": [round(k * 1e6) for k in range(10)], "a": [float(k) for k in range(10, 20)],
        "b": [float(-k) for k in range(10, 20)],
    }
    assert next(iter(iter_samples(batcher.emitted[2], ["b"]))) == (0.02, (-20.0,))
    with pytest.raises(ValueError, match="expected 2 values"):
        batcher.add(1.0, (1, 2, 3))


def test_reader_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match="no such file"):
        list(read_log(tmp_path / "missing.mcap"))
    with pytest.raises(LogFormatError, match="not a file"):
        list(read_log(tmp_path))
    text = tmp_path / "notes.mcap"
    text.write_text("hello, this is not MCAP at all")
    with pytest.raises(LogFormatError, match=r"notes\.mcap: not an MCAP file"):
        list(read_log(text))
    bad = tmp_path / "bad.mcap"
    with open(bad, "wb") as f:
        writer = Writer(f)
        writer.start()
        channel = writer.register_channel("x", "json", writer.register_schema("X", "jsonschema", b"{}"))
        writer.add_message(channel, 2_500_000_000, b"{not json", 0)
        writer.finish()
    with pytest.raises(LogFormatError, match=r"bad\.mcap: record at 2\.500 s on 'x' is not JSON"):
        list(read_log(bad))


def test_a_corrupt_chunk_is_reported_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    _seq_log(path, 500).close()
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    chunk = summary.chunk_indexes[0]
    data = bytearray(path.read_bytes())
    middle = chunk.chunk_start_offset + chunk.chunk_length // 2
    data[middle : middle + 8] = bytes(8)
    path.write_bytes(bytes(data))
    with pytest.raises(LogFormatError, match=rf"run\.mcap: corrupt chunk at byte {chunk.chunk_start_offset}"):
        list(read_log(path))


# -- how a log ends ---------------------------------------------------------------------------------
_HEAD = struct.Struct("<BQ")


def _top_level(data: bytes) -> list[tuple[int, int, int]]:
    """(opcode, offset, body length) of a file's whole top-level records."""
    out, pos = [], 8
    while pos + 9 <= len(data):
        opcode, length = _HEAD.unpack_from(data, pos)
        if pos + 9 + length > len(data):
            break
        out.append((opcode, pos, length))
        pos += 9 + length
    return out


def _killed_log(path: Path, n: int = 6000, per_flush: int = 1500) -> tuple[bytes, list[int]]:
    """A log written by the real writer, several flush intervals long, as a killed writer leaves it (every
    flush in the file, no footer); and the uncompressed size of each record in its chunk."""
    log = EventLog.open(path)
    log.add_channel("seq", "Seq", SEQ_SCHEMA)
    sizes = []
    for i in range(n):
        payload = {"i": i, "pad": "x" * (i % 37)}
        log.write("seq", i * 0.001, payload)
        sizes.append(_HEAD.size + 22 + len(encode(payload)))  # a message record: header, fixed fields, JSON
        if i % per_flush == per_flush - 1:
            log.flush()  # the end of a flush interval: the chunk is ended and written
    data = path.read_bytes()  # what the disk holds if the process dies now
    log.close()
    return data, sizes


def test_a_file_7_bytes_short_loses_only_its_last_zstd_block(tmp_path: Path) -> None:
    n, per_flush = 6000, 1500
    data, sizes = _killed_log(tmp_path / "run.mcap", n, per_flush)
    chunks = [offset for opcode, offset, _ in _top_level(data) if opcode == 0x06]
    assert len(chunks) == n // per_flush
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[:-7])
    reader = read_log(cut)
    got = [r.payload["i"] for r in reader]
    assert got == list(range(len(got)))  # a prefix, in order
    lost = n - len(got)
    assert lost <= per_flush  # at most the last flush interval ...
    assert sum(sizes[len(got):]) <= ZSTD_BLOCK_BYTES  # ... in fact at most the chunk's last zstd block
    ending = reader.ending
    assert ending is not None and ending.kind == "torn"
    assert ending.offset == chunks[-1] and ending.missing == 7 and ending.size == len(data) - 7
    assert ending.records == len(got) and ending.salvaged == len(got) - (n - per_flush) > per_flush // 2
    assert ending.last_t_s == pytest.approx((len(got) - 1) * 0.001)
    assert ending.describe().startswith(f"torn at byte {chunks[-1]} of cut.mcap (a chunk of ")
    assert "cut 7 bytes short" in ending.describe()


def test_a_killed_writer_s_file_ends_torn_after_its_last_record(tmp_path: Path) -> None:
    data, _ = _killed_log(tmp_path / "run.mcap")
    killed = tmp_path / "killed.mcap"
    killed.write_bytes(data)
    reader = read_log(killed)
    assert len(list(reader)) == 6000
    assert reader.ending is not None and reader.ending.kind == "torn"
    assert reader.ending.offset == len(data) and reader.ending.missing == 0 and reader.ending.salvaged == 0
    assert "no footer" in reader.ending.reason
    killed.write_bytes(data + bytes(4096))  # a crash can leave unwritten (zeroed) space at the end
    reader = read_log(killed)
    assert len(list(reader)) == 6000
    assert reader.ending is not None and reader.ending.kind == "torn" and reader.ending.offset == len(data)


def test_a_closed_log_is_complete_and_one_cut_in_its_summary_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    _seq_log(path, 3000).close()
    reader = read_log(path)
    assert len(list(reader)) == 3000
    assert reader.ending is not None and reader.ending.kind == "complete" and reader.ending.records == 3000
    assert reader.ending.describe() == "complete (3000 records, footer intact)"
    assert reader.ending.last_t_s == pytest.approx(2.999)
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[:-7])  # inside the closing magic
    reader = read_log(cut)
    assert len(list(reader)) == 3000
    assert reader.ending is not None and reader.ending.kind == "torn" and reader.ending.offset == len(data) - 8
    assert "no records lost" in reader.ending.reason


def test_3_bytes_overwritten_in_the_first_record_s_length_are_corrupt_not_an_empty_log(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    _seq_log(path, 500).close()
    data = bytearray(path.read_bytes())
    assert _top_level(bytes(data))[0][:2] == (0x01, 8)  # the header record, its length at bytes 9-16
    data[9:12] = b"\xff\xff\xff"
    path.write_bytes(bytes(data))
    reader = read_log(path)
    with pytest.raises(LogFormatError, match=r"run\.mcap: corrupt header at byte 8: its length field") as err:
        list(reader)
    ending = err.value.ending
    assert ending is not None and ending is reader.ending
    assert (ending.kind, ending.offset, ending.records) == ("corrupt", 8, 0)
    assert ending.describe().startswith("corrupt at byte 8 of run.mcap: its length field")


def test_a_garbled_chunk_length_is_corrupt_and_the_records_before_it_are_read(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    log = _seq_log(path, 0)
    for i in range(900):
        log.write("seq", i * 0.001, {"i": i})
        if i % 300 == 299:
            log.flush()
    log.close()
    data = bytearray(path.read_bytes())
    third = [offset for opcode, offset, _ in _top_level(bytes(data)) if opcode == 0x06][2]
    for garble in (b"\x07\x00\x00", b"\x00\x00\x01"):  # a length inside the file, one far past its end
        data[third + 1 : third + 4] = garble
        path.write_bytes(bytes(data))
        got = []
        with pytest.raises(LogFormatError, match=rf"corrupt chunk at byte {third}") as err:
            got.extend(r.payload["i"] for r in read_log(path))
        assert got == list(range(600))
        assert err.value.ending is not None and err.value.ending.kind == "corrupt"
        assert err.value.ending.offset == third and err.value.ending.records == 600


def test_a_rotated_set_ends_where_its_last_file_does(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    log = _seq_log(path, 5000, rotate_bytes=8192, chunk_bytes=2048)
    log.close()
    parts = log.paths
    reader = read_log(path)
    assert len(list(reader)) == 5000
    assert reader.ending is not None and reader.ending.kind == "complete" and reader.ending.files == len(parts)
    assert reader.ending.path == parts[-1]
    last = parts[-1].read_bytes()
    parts[-1].write_bytes(last[: len(last) // 2])
    reader = read_log(path)
    got = [r.payload["i"] for r in reader]
    assert got == list(range(len(got))) and len(got) < 5000
    assert reader.ending is not None and reader.ending.kind == "torn" and reader.ending.path == parts[-1]
    assert reader.ending.records == len(got) and reader.ending.files == len(parts)
    shutil.copy(parts[1], tmp_path / "copy.mcap")
    middle = parts[1].read_bytes()  # a middle file cut short: named, the files after it still read
    parts[1].write_bytes(middle[:-20])
    reader = read_log(path)
    list(reader)
    assert reader.ending is not None and reader.ending.kind == "torn" and reader.ending.path == parts[1]
