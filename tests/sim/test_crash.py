"""Issue 12.4's acceptance: the controller SIGKILLed mid-stow at random moments loses and duplicates no item.

`bench/crash.py` runs the campaign (one copy of it, loaded here): `cellctl devices --sim --json` once (seed fixed),
the controller `python -m cellctl run --json` as a subprocess against it (`devices = "external"`, the sim-service
camera, a fixed FC port, `[sim] fc_client = false`), a SimFc acknowledging and keeping the ledger across restarts, 20
SIGKILLs at seeded random moments of a stow (some at an arrival, a few of the restarts themselves), each restart with a
task interrupted seen Aborted with an alarm naming it and cleared and reset over OPC UA. At the end every item the
conveyor handed over (the PLC's HandedOver) has exactly one report, the interrupted ones handoffs with `recovered` and
a last known location, and the store holds nothing pending. Every wait is on a state, a notification or a process,
bounded.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

pytestmark = pytest.mark.anyio

BENCH = Path(__file__).resolve().parents[2] / "bench" / "crash.py"
KILLS = 20


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_crash", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(900)
async def test_twenty_sigkills_mid_stow_lose_and_duplicate_no_item(tmp_path: Path) -> None:
    bench = load_bench()
    lines: list[str] = []
    with anyio.fail_after(840):
        r: dict[str, Any] = await bench.campaign(KILLS, seed=3, work=tmp_path, progress=lines.append)
    shown = "\n".join(lines)
    assert r["problems"] == [], f"{r['problems']}\n{shown}\nfaults: {r['fault_reasons']}"
    assert r["kills"] == KILLS and r["lost"] == 0 and r["duplicated"] == 0, shown
    assert r["items"] >= KILLS // 2  # the cell got on with stowing between the kills
    assert r["handoffs"] >= 1, shown  # some kills caught an item the conveyor had handed over
    assert r["reports"] >= r["items"]
    final = r["final_summary"]
    assert final["end_state"] == "stopped" and final["fc"]["pending"] == 0 and final["fc"]["unfinished"] == 0
