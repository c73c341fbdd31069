"""`ChartControl`: the FC server's view of the running cell chart, answered from the chart itself."""

from __future__ import annotations

import anyio

from cellctl.fc.control import CellControl, ChartControl, CurrentTask
from cellctl.fc.packml import COMMANDS
from statecharts import cell
from statecharts.engine import ChartRunner, VirtualClock
from statecharts.workcell import MotionOutcome, Primitive
from tests.statecharts.fake_workcell import FakeWorkcell, item


def allowed(control: ChartControl) -> set[str]:
    return {name for name, event in COMMANDS.items() if control.allowed(event)}


def test_allowed_commands_come_from_the_active_states_and_their_ancestors() -> None:
    wc = FakeWorkcell(items=[item(1)], move_s=3.0)
    data = cell.CellData(wc)
    seen: dict[str, set[str]] = {}

    async def main() -> None:
        runner = ChartRunner(cell.build(), data=data)
        posted: list[str] = []

        async def post(event: str) -> None:
            posted.append(event)
            runner.post(event)

        control = ChartControl(runner, data, post)
        assert isinstance(control, CellControl)
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)
            for event, state in (("", "stopped"), ("cmd.reset", "idle"), ("cmd.start", "execute"),
                                 ("cmd.hold", "held")):
                if event:
                    await control.post(event)
                await runner.wait_for(state)
                assert control.state() == state
                seen[state] = allowed(control)
            assert posted == ["cmd.reset", "cmd.start", "cmd.hold"]
            tg.cancel_scope.cancel()

    VirtualClock().run(main)
    assert seen == {
        "stopped": {"Reset", "Abort"},
        "idle": {"Start", "Stop", "Abort"},
        "execute": {"Hold", "Suspend", "Complete", "Stop", "Abort"},
        "held": {"Unhold", "Stop", "Abort"},
    }


def test_counters_split_reports_by_kind_and_faults_by_reason_and_name_the_running_task() -> None:
    wc = FakeWorkcell(items=[item(1), item(2), item(3)])
    wc.script(Primitive.APPROACH, MotionOutcome.FAULT)
    data = cell.CellData(wc, max_cycles=3)
    during: list[CurrentTask] = []

    async def main() -> None:
        runner = ChartRunner(cell.build(), data=data)
        control = ChartControl(runner, data, lambda event: _post(runner, event))
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)
            await control.post("cmd.reset")
            await runner.wait_for("idle")
            await control.post("cmd.start")
            await wc.called("move approach")
            during.append(control.counters().task)
            await runner.wait_for("complete")
            counters = control.counters()
            tg.cancel_scope.cancel()
        assert (counters.cycles, counters.reports, counters.stows, counters.picks) == (3, 3, 3, 0)
        assert (counters.done, counters.faults, counters.handoffs) == (2, 1, 0)
        assert dict(counters.faults_by_reason) == {"approach fault (code 17)": 1}
        assert counters.task == CurrentTask()  # complete: nothing running

    VirtualClock().run(main)
    assert during[0].kind == "stow" and during[0].task_id.endswith("stow-000000")
    assert during[0].item_id == ""  # the running task's item is not exposed by the chart


async def _post(runner: ChartRunner, event: str) -> None:
    runner.post(event)
