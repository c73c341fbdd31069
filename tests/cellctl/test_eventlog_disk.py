"""A failing log disk never raises into the writers: the log is marked failed, names the file, tells its owner
once and counts what it could not write."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from cellctl.eventlog import EventLog
from cellctl.eventlog import writer as log_writer


def test_enospc_marks_the_log_failed_and_counts_lost_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = {"now": False}
    real = log_writer._CountingFile.write

    def write(f: Any, data: bytes) -> int:
        if full["now"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(f, data)

    monkeypatch.setattr(log_writer._CountingFile, "write", write)
    failures: list[OSError] = []
    path = tmp_path / "run.mcap"
    log = EventLog.open(path, flush_s=1.0, on_failure=failures.append)
    log.add_channel("x", "X", {"type": "object"})
    for i in range(100):
        log.write("x", i * 0.01, {"i": i})
    log.flush()
    full["now"] = True
    for i in range(100, 150):
        log.write("x", i * 0.01, {"i": i})  # buffered in the chunk in progress
    log.flush()  # the chunk cannot be written: no exception
    for i in range(150, 160):
        log.write("x", i * 0.01, {"i": i})  # after the failure: counted, not written
    log.close()  # no exception either
    assert len(failures) == 1
    assert log.failed is failures[0]
    assert log.failed.errno == errno.ENOSPC and log.failed.filename == str(path)
    assert log.records_lost == 60
    assert log.records_flushed == 100
