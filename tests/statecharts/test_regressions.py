"""Regressions found in review: each was a failing reproducer first."""

from __future__ import annotations

import anyio
import pytest

from statecharts.engine import (
    ActionContext,
    ActivityContext,
    Chart,
    ChartFinishedError,
    ChartRunner,
    Event,
    Final,
    LivelockError,
    Parallel,
    State,
    TraceRecorder,
    VirtualClock,
    activity,
    after,
    always,
    on,
    running,
)

from .helpers import interpreter


def test_transition_inside_a_parallel_root_keeps_every_region_active() -> None:
    chart = Chart(
        "proot",
        Parallel(
            "root",
            State("r1", State("a1", transitions=[on("x", "b2")]), initial="a1"),
            State("r2", State("b1"), State("b2"), initial="b1"),
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("x"))
    assert chart.configuration_problems(interp.configuration) == []
    assert interp.configuration == {"root", "r1", "a1", "r2", "b2"}


def test_timer_of_a_state_left_for_good_never_fires_even_into_a_wildcard() -> None:
    rec = TraceRecorder()
    chart = Chart(
        "stale",
        State(
            "root",
            State("p", State("a", transitions=[after(1, "x"), on("go", "b")]), State("b"), initial="a",
                  transitions=[on("*", "other")]),
            State("x"),
            State("other"),
            initial="p",
        ),
    )

    async def main() -> None:
        async with running(chart, trace=rec) as runner:
            runner.post("go")
            await anyio.sleep(5)
            assert runner.configuration == {"root", "p", "b"}

    VirtualClock().run(main)
    assert [r.event for r in rec.of_kind("event")] == ["go"]


def test_wait_for_fails_instead_of_hanging_when_the_chart_ends() -> None:
    chart = Chart("w", State("root", State("a", transitions=[on("quit", "end")]), State("b"), Final("end"),
                             initial="a", transitions=[on("never", "b")]))

    async def main() -> None:
        runner = ChartRunner(chart)
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)

            async def quit_soon() -> None:
                await anyio.sleep(1)
                runner.post("quit")

            tg.start_soon(quit_soon)
            with pytest.raises(ChartFinishedError, match="ended in 'end' before 'b'"):
                await runner.wait_for("b")
            with pytest.raises(ChartFinishedError):  # and at once when already ended
                await runner.wait_for("b")

    VirtualClock().run(main)


def test_activity_of_a_state_left_before_the_activity_ran_never_starts() -> None:
    ran: list[str] = []

    @activity("done")
    async def work(ctx: ActivityContext) -> None:
        ran.append(ctx.state)
        ctx.post("done")

    chart = Chart(
        "burst",
        State("root", State("idle", transitions=[on("go", "s")]),
              State("s", activities=work, transitions=[on("stop", "idle"), on("done", "idle")]), initial="idle"),
    )

    async def main() -> None:
        async with running(chart) as runner:
            runner.post("go")
            runner.post("stop")  # same burst: "s" is entered and left before `work` is scheduled
            await runner.wait_idle()
            await anyio.sleep(1)

    VirtualClock().run(main)
    assert ran == []


def test_eventless_transition_whose_guard_raises_does_not_livelock() -> None:
    def broken(ctx: ActionContext, event: Event) -> bool:
        raise ValueError("no reading")

    chart = Chart("g", State("root", State("a", transitions=[always("b", guard=broken)]), State("b"), initial="a"))
    interp, rec, _ = interpreter(chart)
    assert interp.configuration == {"root", "a"}
    assert len(rec.of_kind("error")) == 1  # reported once per macrostep


def test_eventless_cycle_raises_livelock_error() -> None:
    chart = Chart(
        "cycle",
        State("root", State("idle", transitions=[on("go", "a")]), State("a", transitions=[always("b")]),
              State("b", transitions=[always("a")]), initial="idle"),
    )
    interp, _, _ = interpreter(chart)
    with pytest.raises(LivelockError, match="no stable configuration"):
        interp.process(Event("go"))
