"""The whole controller (cell, stow, pick charts) against the simulated cell on virtual time.

These are about the controller, so they perceive with the oracle (the renderer's labels: fast); the learned
perception the cell uses by default has its own tests (test_learned_perception.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellctl.commands.replay import Entry, replay
from cellctl.commands.sim import SimOptions, run_sim
from cellctl.eventlog import read_log


def _sim(task: str, cycles: int, seed: int = 1, faults: str = "none", log: Path | None = None) -> dict:
    return run_sim(SimOptions(task, cycles, seed, faults, log=log, perception="oracle"))  # type: ignore[arg-type]


def _refused(s: dict) -> int:
    """Handoffs at the eligibility check: the FC orders any item of the pod, the cell refuses what it cannot pick."""
    return sum(n for reason, n in s["handoff_reasons"].items() if reason.startswith("target "))


@pytest.mark.parametrize("task", ["stow", "pick"])
def test_no_faults_completes_95_percent(task: str) -> None:
    s = _sim(task, 40)
    assert s["end_state"] == "complete"
    assert s["cycles"] == 40 and s["reports"] == 40
    assert s["outcomes"]["done"] >= 0.95 * (40 - _refused(s)), s
    assert s["outcomes"]["fault"] == 0, s
    assert s["perception"] == "oracle" and s["wrong_item_picks"] == 0, s
    if task == "pick":
        assert 0 < _refused(s) < 40, s  # buried and blocked items are ordered too, and refused


def test_stow_cycle_time_is_realistic() -> None:
    s = _sim("stow", 20)
    per_cycle = s["virtual_s"] / 20
    assert 11.0 <= per_cycle <= 16.5, per_cycle  # the modelled cells stow ~220-300 units/h


def test_harsh_every_cycle_ends_with_a_report_and_reasons() -> None:
    s = _sim("mixed", 60, seed=3, faults="harsh")
    assert s["end_state"] == "complete"
    assert s["cycles"] == 60 and s["reports"] == 60
    assert sum(s["outcomes"].values()) == 60
    assert s["outcomes"]["handoff"] > 0 and s["outcomes"]["fault"] > 0 and s["outcomes"]["done"] > 0
    assert sum(s["handoff_reasons"].values()) == s["outcomes"]["handoff"]
    assert all(reason for reason in s["handoff_reasons"])


def test_harsh_retries_happen(tmp_path: Path) -> None:
    log = tmp_path / "harsh.mcap"
    _sim("mixed", 30, seed=5, faults="harsh", log=log)
    reports = [r.payload["args"]["report"] for r in read_log(log, topics={"port.call"})
               if r.payload["method"] == "report"]
    assert len(reports) == 30
    assert any(r["attempts"] > 1 and r["outcome"] == "done" for r in reports), "no successful retry"
    assert all(r["reason"] for r in reports if r["outcome"] != "done")


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    a, b, c = _sim("mixed", 12, seed=7), _sim("mixed", 12, seed=7), _sim("mixed", 12, seed=8)
    a.pop("wall_s"), b.pop("wall_s"), c.pop("wall_s")
    assert a == b
    assert a["trace_sha256"] != c["trace_sha256"]


def _entries(path: Path) -> list[Entry]:
    return [Entry(r.t_s, r.topic, r.payload) for r in read_log(path)]


def test_replay_of_a_sim_log_does_not_diverge(tmp_path: Path) -> None:
    log = tmp_path / "run.mcap"
    s = _sim("mixed", 16, seed=2, faults="typical", log=log)
    out = replay(_entries(log))
    assert out["diverged"] is False, out["first_divergence"]
    assert out["transitions"] == s["transitions"] == out["recorded_transitions"]
    assert out["speedup"] > 50


def test_replay_reports_where_an_altered_input_diverges(tmp_path: Path) -> None:
    log = tmp_path / "run.mcap"
    _sim("stow", 6, seed=2, log=log)
    entries = _entries(log)
    # Alter one recorded input: the 3rd successful eject now reports a force-limit trip.
    ejects = [i for i, e in enumerate(entries) if e.topic == "port.reply" and e.payload["method"] == "move"
              and e.payload["result"]["outcome"] == "done" and "in P1" in e.payload["result"]["detail"]]
    i = ejects[2]
    altered = json.loads(json.dumps(entries[i].payload))
    altered["result"]["outcome"] = "force_limit"
    entries[i] = Entry(entries[i].t_s, entries[i].topic, altered)
    out = replay(entries)
    assert out["diverged"] is True
    assert out["first_divergence"]["time"] == pytest.approx(entries[i].t_s, abs=1e-6)
    assert out["first_divergence"]["kind"] == "transition"
