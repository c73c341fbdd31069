"""bench/faults.py: a short harsh campaign reports every taken item and order once; its counter can fail."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from statecharts.workcell import TaskOutcome, TaskReport

BENCH = Path(__file__).resolve().parents[2] / "bench" / "faults.py"
KEYS = (
    "cycles", "reports", "missing", "duplicated", "crashes", "rss_growth_kb_per_cycle", "seeds", "cycles_per_seed",
    "rss_max_kb_at_500", "rss_max_kb_at_end", "wall_s",
)


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_faults", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def report(task_id: str, item_id: str, task: str = "stow") -> TaskReport:
    return TaskReport(task_id=task_id, task=task, outcome=TaskOutcome.DONE, item_id=item_id, bin_id="A1",
                      started_s=0.0, ended_s=1.0)  # type: ignore[arg-type]


def test_short_harsh_campaign_reports_every_take_once(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    assert bench.main(["--seeds", "2", "--cycles", "20", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in KEYS:
        assert key in result, key
    assert result["seeds"] == 2 and result["cycles_per_seed"] == 20
    assert result["cycles"] == 40
    # Starved tasks take nothing, report nothing and are not cycles: every cycle is one report at the port.
    assert result["reports"] == result["cycles"] == result["taken"] == result["tasks"]
    assert sum(result["outcomes"].values()) == 40
    assert result["missing"] == 0 and result["duplicated"] == 0 and result["unmatched"] == 0
    assert result["crashes"] == 0
    assert all(s["reports"] == s["chart_reports"] == 20 for s in result["per_seed"])
    assert result["rss_max_kb_at_end"] >= result["rss_max_kb_at_500"] > 0
    assert isinstance(result["rss_growth_kb_per_cycle"], float)
    assert result["rss_baseline_cycle"] == 20 and result["rss_end_cycle"] == 40


def test_the_counter_finds_a_missing_and_a_duplicated_report() -> None:
    bench = load_bench()
    taken = [bench.Taken("stow", "7", t_s=1.0), bench.Taken("pick", "3", "O000001", 2.0),
             bench.Taken("stow", "9", t_s=3.0), bench.Taken("stow", "9", t_s=4.0)]  # item 9 offered again
    reports = [report("stow-000000", "7"), report("pick-000001", "3", "pick"), report("pick-000001", "3", "pick"),
               report("stow-000002", "9")]
    t = bench.tally(taken, reports)
    assert t.reports == 4 and t.tasks == 3 and t.taken == 4
    assert t.duplicated == ["pick-000001"]
    assert t.missing == [bench.Taken("stow", "9", t_s=4.0)]  # the second take of item 9 got no report
    assert t.unmatched == []
    # A duplicate does not stand in for a missing report; a report nothing was taken for is unmatched.
    t = bench.tally(taken[:2], [report("stow-000000", "7"), report("stow-000000", "7"), report("stow-000005", "8")])
    assert [m.item_id for m in t.missing] == ["3"] and t.duplicated == ["stow-000000"]
    assert t.unmatched == ["stow-000005"]
    assert bench.tally(taken[:3], [report("a", "7"), report("b", "3", "pick"), report("c", "9")]).missing == []


def test_a_raising_run_is_a_crash_and_the_campaign_goes_on(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_bench()
    real = bench.run_sim

    def flaky(opts):  # type: ignore[no-untyped-def]
        if opts.seed == 1:
            raise RuntimeError("boom")
        return real(opts)

    monkeypatch.setattr(bench, "run_sim", flaky)
    assert bench.main(["--seeds", "2", "--cycles", "3", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["crashes"] == 1
    assert result["per_seed"][0]["crash"] == "RuntimeError: boom" and result["per_seed"][0]["cycles"] == 0
    assert result["per_seed"][1]["crash"] == "" and result["per_seed"][1]["reports"] == 3
    assert result["cycles"] == 3
    assert "crashes 1 (aim 0)" in result["aims_missed"]
    assert "boom" in captured.err
