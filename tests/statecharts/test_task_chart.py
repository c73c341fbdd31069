"""The task charts' shared builders (statecharts/task_chart.py) and the imports around them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from statecharts import pick, stow
from statecharts.task_base import TaskConfig

ROOT = Path(__file__).resolve().parents[2]
SCAFFOLDING = {"work", "plan", "decide", "recover", "report", "reported", "starved", "arm_wait_band", "arm_retract",
               "arm_done", "band"}  # fmt: skip


def test_the_chart_modules_never_load_tasks_py_which_picks_them() -> None:
    """tasks.py imports stow and pick to run them; nothing they import may import it back (no import circle)."""
    code = (
        "import sys\n"
        "import statecharts.task_base, statecharts.task_actions, statecharts.task_chart, statecharts.band\n"
        "import statecharts.stow, statecharts.pick\n"
        "assert 'statecharts.tasks' not in sys.modules, 'a chart module loaded statecharts.tasks'\n"
        "import statecharts.tasks\n"
        "assert statecharts.tasks.stow is statecharts.stow and statecharts.tasks.pick is statecharts.pick\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_stow_and_pick_are_built_on_the_same_scaffolding() -> None:
    for chart in (stow.build(), pick.build()):
        assert {n.id for n in chart.states} >= SCAFFOLDING, chart.name
        assert chart["arm_wait_band"].doc == "never approach before the band is held"


def test_the_band_wait_is_built_from_the_config() -> None:
    for build in (stow.build, pick.build):
        timer = build(TaskConfig(band_timeout_s=12.5))["arm_wait_band"].transitions[1]
        assert timer.delay == 12.5 and [t.id for t in timer.targets] == ["arm_done"]
