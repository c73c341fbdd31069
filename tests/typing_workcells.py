"""Every implementation of the `Workcell` port, listed where mypy checks it (pyproject's [tool.mypy] files).

Each function below passes an implementation where a `Workcell` is expected, so mypy checks its methods against
the Protocol's, parameter and return types included, and names the member that conflicts.
tests/test_architecture.py checks `IMPLEMENTATIONS` at run time (names, parameters, async-ness).
Not a test module: nothing here runs.
"""

from __future__ import annotations

from cellctl.workcells.drivers import DriverWorkcell
from cellctl.workcells.recording import RecordingWorkcell
from cellctl.workcells.replay import ReplayWorkcell
from cellctl.workcells.sim import SimWorkcell
from statecharts.catalog import IdleWorkcell
from statecharts.workcell import Workcell
from tests.statecharts.fake_workcell import FakeWorkcell

IMPLEMENTATIONS: tuple[type[Workcell], ...] = (
    DriverWorkcell,
    SimWorkcell,
    RecordingWorkcell,
    ReplayWorkcell,
    IdleWorkcell,
    FakeWorkcell,
)


def _driver(w: DriverWorkcell) -> Workcell:
    return w


def _sim(w: SimWorkcell) -> Workcell:
    return w


def _recording(w: RecordingWorkcell) -> Workcell:
    return w


def _replay(w: ReplayWorkcell) -> Workcell:
    return w


def _idle(w: IdleWorkcell) -> Workcell:
    return w


def _fake(w: FakeWorkcell) -> Workcell:
    return w
