"""The status line `cellctl run` leaves on the terminal has the run's final counts."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from cellctl.commands.run import RunStatus, _final_status


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_last_status_line_counts_the_interrupted_report_a_stop_delivers() -> None:
    data = SimpleNamespace(counts=Counter(done=13), cycles=13, alarm="")
    run = SimpleNamespace(data=data, state=lambda: "stopping")
    status = RunStatus("stow", Path("x.mcap"), run=cast(Any, run), stopping=" · stopping")
    data.counts["fault"] += 1  # the stop's interrupted report, counted as the task unwinds
    data.cycles += 1
    status.end = "stopped"
    out = Tty()
    _final_status(status, out)
    line = out.getvalue()
    assert "stopped · cycle 14 · done 13 handoff 0 fault 1" in line and "stopping" not in line
    assert line.endswith("\n")
