"""`cmd.complete` (PackML Complete, the FC's ToComplete): execute -> completing -> complete, then Reset."""

from __future__ import annotations

import anyio

from statecharts import cell
from statecharts.engine import ChartRunner, VirtualClock

from .fake_workcell import FakeWorkcell, item


def test_complete_command_ends_the_run_in_complete_and_reset_starts_again() -> None:
    wc = FakeWorkcell(items=[item(1), item(2), item(3)], move_s=3.0)
    data = cell.CellData(wc)

    async def main() -> None:
        runner = ChartRunner(cell.build(), data=data)
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)
            runner.post("cmd.reset")
            await runner.wait_for("idle")
            runner.post("cmd.start")
            await wc.called("move approach")
            runner.post("cmd.complete")
            await runner.wait_for("complete")
            runner.post("cmd.reset")
            await runner.wait_for("idle")
            tg.cancel_scope.cancel()

    VirtualClock().run(main)
    # The task cut short still reports (interrupted), like any task leaving execute.
    assert [(r.task_id.rsplit("-", 1)[-1], r.outcome.value) for r in wc.reports] == [("000000", "fault")]
    assert wc.reports[0].reason.startswith("interrupted")
    # ... and completing makes the arm safe before the cell rests in complete, as a hold or a stop does.
    names = wc.names()
    after = names[names.index("move approach") + 1:]
    assert "move retract" in after and "hook up" in after, after
