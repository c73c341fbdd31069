"""bench/crash.py: two SIGKILLs, then one JSON object with the campaign's figures; nothing lost or duplicated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "crash.py"
KEYS = ("kills", "items", "reports", "lost", "duplicated", "handoffs", "returned", "cases", "seeds", "wall_s",
        "problems", "faults", "fault_reasons")


@pytest.mark.timeout(400)
def test_two_kills_print_one_json_object_with_nothing_lost(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--kills", "2", "--seed", "7", "--json", "--quiet",
                           "--dir", str(tmp_path)], capture_output=True, text=True, timeout=380)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr[-3000:]
    r = json.loads(lines[0])
    assert set(KEYS) <= set(r)
    assert r["kills"] == 2 and r["lost"] == r["duplicated"] == 0 and r["problems"] == [], r
    assert sum(n for case, n in r["cases"].items() if case != "e") == 2  # each kill has its case
    assert done.returncode == 0, done.stderr[-3000:]
