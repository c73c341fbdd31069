"""The example chart runs end to end on virtual time."""

from __future__ import annotations

import anyio

from statecharts import demo
from statecharts.engine import ChartRunner, TraceRecorder, VirtualClock, running


def test_demo_cycle_backs_off_on_contact_then_completes() -> None:
    data = demo.DemoData(contacts=1)
    rec = TraceRecorder()

    async def main() -> None:
        async with running(demo.build(), data=data, trace=rec) as runner:
            runner.post("start")
            await runner.wait_for("cycle")
            await runner.wait_for("idle")
            assert data.cycles == 1

    VirtualClock().run(main)
    states = [r.state for r in rec.of_kind("entry")]
    assert states.count("back_off") == 1 and states.count("insert") == 2
    # move 1.5 + insert 2 + back-off 0.5 + insert 2 + eject 1 + retract 1.2, then band closes 0.6
    done = next(r for r in rec.of_kind("transition") if r.event == "done.state.cycle")
    assert abs(done.time - 8.8) < 1e-6


def test_demo_pause_resumes_arm_from_history_and_an_hour_paused_shuts_down() -> None:
    data = demo.DemoData(contacts=0)

    async def main() -> str | None:
        runner = ChartRunner(demo.build(), data=data)
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)
            runner.post("start")
            await anyio.sleep(2.0)  # arm is inserting by now
            assert runner.is_active("insert")
            runner.post("pause")
            await anyio.sleep(60)
            runner.post("resume")
            await runner.wait_idle()
            assert runner.is_active("insert") and runner.is_active("band_closed")
            runner.post("pause")
            await runner.finished.wait()  # after(3600) in paused
            return runner.final

    assert VirtualClock().run(main) == "off"
